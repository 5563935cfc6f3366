"""`sanscmp mock` in process: the behaviours of OpenSSL 3.2+'s mock that the system's 3.0 client
cannot show (genm answers, polling of rr/genm/certConf, -ref_cert, certProfile), concurrency,
and reading options the way `openssl` does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from asn1crypto.x509 import Certificate as AsnCertificate
from asn1crypto.x509 import GeneralName, Name
from cmp_pki import (
    Crafter,
    FixedClock,
    exchange,
    fail_info,
    make_client,
    make_server,
    name,
    perform,
    pki,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from sanscmp.app.mock import MockHandlers, MockResponses
from sanscmp.app.mock_command import build_mock_server, mock_responses
from sanscmp.app.openssl_inputs import InputError, config_options, read_password
from sanscmp.engine.client import CertRequestSpec, Phase, RevocationSpec
from sanscmp.engine.errors import FailInfo
from sanscmp.engine.handlers import CmpServer
from sanscmp.engine.keygen import KeyPackageFormat

NEW_KEY = ec.generate_private_key(ec.SECP256R1())
ISSUED = pki().issue(NEW_KEY.public_key(), name("mock issued"))


def request() -> list[CertRequestSpec]:
    """A request for the key of the certificate the mock returns (clients check they match)."""
    return [CertRequestSpec(key=NEW_KEY, subject=name("mock client"))]


def mock_server(clock: FixedClock, **settings: Any) -> CmpServer:
    responses = MockResponses(cert_out=ISSUED, ca_pubs_out=(pki().ca_cert,), **settings)
    handlers = MockHandlers(responses)
    return make_server(clock=clock, custom_ctx=responses, handlers=handlers.handlers())


def test_ir_returns_the_configured_certificate_and_ca_pubs() -> None:
    clock = FixedClock()
    result = perform(mock_server(clock), make_client(clock=clock).ir(request()))
    assert result.certificates[0] == ISSUED
    assert result.ca_pubs == [pki().ca_cert]


def test_cr_gets_no_ca_pubs_as_in_openssl() -> None:
    clock = FixedClock()
    result = perform(mock_server(clock), make_client(clock=clock).cr(request()))
    assert result.certificates[0] == ISSUED
    assert result.ca_pubs == []


def test_status_failure_bits_and_text_reach_the_client() -> None:
    clock = FixedClock()
    bits = frozenset({FailInfo.badAlg, FailInfo.badPOP})
    server = mock_server(clock, status="rejection", fail_info=bits, status_string="no")
    result = perform(server, make_client(clock=clock).ir(request()))
    assert result.fail_info == {"badAlg", "badPOP"}
    assert result.status_text == ["no"]


def test_granted_with_mods_and_text_deliver_the_certificate() -> None:
    clock = FixedClock()
    server = mock_server(clock, status="grantedWithMods", status_string="renew")
    transaction = make_client(clock=clock).ir(request())
    result = perform(server, transaction)
    assert result.statuses[0]["status"].native == "grantedWithMods"
    assert result.statuses[0]["statusString"].native == ["renew"]
    assert result.certificates[0] == ISSUED


@pytest.mark.parametrize("kind", ["rr", "genm"])
def test_later_versions_delay_rr_and_genm_too(kind: str) -> None:
    clock = FixedClock()
    server = mock_server(clock, poll_count=2, check_after=0)
    client = make_client(clock=clock)
    if kind == "rr":
        transaction = client.rr([RevocationSpec.of(ISSUED)])
    else:
        transaction = client.genm([{"infoType": "caCerts"}])
    result = perform(server, transaction)
    assert transaction.phase is Phase.done
    assert result.polls == 2


def test_compat_30_answers_genm_at_once_and_echoes_it() -> None:
    clock = FixedClock()
    server = mock_server(clock, poll_count=2, compat="3.0")
    result = perform(server, make_client(clock=clock).genm([{"infoType": "caCerts"}]))
    assert result.polls == 0
    assert result.general_info[0]["infoType"].native == "caCerts"
    assert result.general_info[0]["infoValue"].native is None  # echoed as sent


def test_certconf_is_delayed_after_a_delayed_ip_in_later_versions() -> None:
    clock = FixedClock()
    server = mock_server(clock, poll_count=1, check_after=0)
    transaction = make_client(clock=clock).ir(request())
    result = perform(server, transaction)
    assert transaction.phase is Phase.done
    assert result.polls == 2  # one for the ip, one for the pkiconf


def test_polling_is_per_transaction() -> None:
    clock = FixedClock()
    server = mock_server(clock, poll_count=1, check_after=0)
    first = make_client(clock=clock, seed=b"1").ir(request())
    second = make_client(clock=clock, seed=b"2").ir(request())
    waiting_first = server.process_request(first.request.dump())
    waiting_second = server.process_request(second.request.dump())
    poll_first = first.receive(waiting_first)
    poll_second = second.receive(waiting_second)
    assert poll_first is not None and poll_second is not None
    assert poll_first["body"].name == poll_second["body"].name == "pollReq"
    assert server.process_request(poll_second.dump())["body"].name == "ip"
    assert server.process_request(poll_first.dump())["body"].name == "ip"


def test_genm_ca_certs_root_ca_cert_and_template() -> None:
    clock = FixedClock()
    root = pki().ca_cert
    server = mock_server(clock, new_with_new=root, ref_cert=ISSUED)
    ca_certs = perform(
        server, make_client(clock=clock, seed=b"1").genm([{"infoType": "caCerts"}])
    ).general_info[0]
    assert [c.dump() for c in ca_certs["infoValue"]] == [root.public_bytes(Encoding.DER)]
    old_root = {
        "infoType": "rootCaCert",
        "infoValue": AsnCertificate.load(root.public_bytes(Encoding.DER)),
    }
    update = perform(server, make_client(clock=clock, seed=b"2").genm([old_root])).general_info[0]
    assert update["infoType"].native == "rootCaKeyUpdate"
    assert update["infoValue"]["newWithNew"].dump() == root.public_bytes(Encoding.DER)
    template = perform(
        server, make_client(clock=clock, seed=b"3").genm([{"infoType": "certReqTemplate"}])
    ).general_info[0]
    value = template["infoValue"]
    assert value["certTemplate"]["issuer"] == Name.load(ISSUED.issuer.public_bytes())
    assert [c["type"].native for c in value["keySpec"]] == ["algId", "rsaKeyLen"]
    assert value["keySpec"][1]["value"].native == 4096


def test_genm_root_ca_cert_of_another_subject_gets_an_empty_update() -> None:
    clock = FixedClock()
    server = mock_server(clock, new_with_new=pki().ca_cert)
    other = {
        "infoType": "rootCaCert",
        "infoValue": AsnCertificate.load(ISSUED.public_bytes(Encoding.DER)),
    }
    answer = perform(server, make_client(clock=clock).genm([other])).general_info[0]
    assert answer["infoType"].native == "rootCaKeyUpdate"
    assert answer["infoValue"].native is None


def test_genm_crl_status_list() -> None:
    clock = FixedClock()
    crl = _crl()
    server = mock_server(clock, crl_out=crl)
    issuer = Name.load(crl.issuer.public_bytes())
    issuers = [GeneralName(name="directory_name", value=issuer)]
    old = {"source": {"issuer": issuers}, "thisUpdate": {"utc_time": _T0}}
    answer = perform(
        server, make_client(clock=clock).genm([{"infoType": "crlStatusList", "infoValue": [old]}])
    ).general_info[0]
    assert answer["infoType"].native == "crls"
    assert answer["infoValue"][0].dump() == crl.public_bytes(Encoding.DER)
    current = dict(old, thisUpdate={"utc_time": crl.last_update_utc})
    answer = perform(
        server,
        make_client(clock=clock, seed=b"b").genm(
            [{"infoType": "crlStatusList", "infoValue": [current]}]
        ),
    ).general_info[0]
    assert answer["infoValue"].native is None


def test_reference_certificate_guards_kur_and_rr() -> None:
    clock = FixedClock()
    server = mock_server(clock, ref_cert=pki().clients["ec"].certificate)
    result = perform(server, make_client(clock=clock).rr([RevocationSpec.of(ISSUED)]))
    assert result.fail_info == {"badRequest"}
    assert "wrong certificate to revoke" in " ".join(result.status_text)
    own = RevocationSpec.of(pki().clients["ec"].certificate)
    assert perform(server, make_client(clock=clock, seed=b"2").rr([own])).statuses


def test_cr_cert_profile_must_be_profile1() -> None:
    clock = FixedClock()
    server = mock_server(clock)
    cr = make_client(clock=clock).cr(request()).request["body"]
    for profile, refused in (("profile2", {"badRequest"}), ("profile1", set())):
        info = [{"infoType": "certProfile", "infoValue": [profile]}]
        answer = exchange(server, Crafter(clock).message(cr, general_info=info))
        assert fail_info(answer) == refused
        assert answer["body"].name == ("error" if refused else "cp")


def test_send_error_refuses_everything() -> None:
    clock = FixedClock()
    server = mock_server(clock, send_error=True)
    result = perform(server, make_client(clock=clock).genm([]))
    assert result.fail_info == {"badRequest"}


def test_options_become_responses_and_server(tmp_path: Path) -> None:
    pem = Encoding.PEM
    (tmp_path / "issued.pem").write_bytes(ISSUED.public_bytes(pem))
    values = _defaults(rsp_cert=str(tmp_path / "issued.pem"), failure=9, pkistatus=2)
    responses = mock_responses(values)
    assert responses.cert_out == ISSUED
    assert responses.status == "rejection"
    assert responses.fail_info == {FailInfo.badPOP}
    values["failurebits"] = 3
    assert mock_responses(values).fail_info == {FailInfo.badAlg, FailInfo.badMessageCheck}
    with pytest.raises(InputError, match="-failure out of range"):
        mock_responses(_defaults(failure=27))
    with pytest.raises(InputError, match="must give -srv_ref"):
        build_mock_server(_defaults(srv_secret="pass:x"))
    server = build_mock_server(_defaults(srv_ref="r", srv_secret="pass:x", grant_implicitconf=True))
    assert server.engine.options.grant_implicit_confirm
    assert server.engine.options.central_key_package is KeyPackageFormat.OPENSSL


def test_password_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_password("pass:abc") == b"abc"
    monkeypatch.setenv("MOCK_SECRET", "from env")
    assert read_password("env:MOCK_SECRET") == b"from env"
    (tmp_path / "secret").write_text("from file\nsecond line\n")
    assert read_password(f"file:{tmp_path / 'secret'}") == b"from file"
    with pytest.raises(InputError):
        read_password("plain")


def test_config_sections_like_openssl(tmp_path: Path) -> None:
    config = tmp_path / "cmp.cnf"
    config.write_text(
        "dir = /pki\n[default]\nsrv_ref = base\n[cmp]\nsrv_ref = cmp\nrsp_cert = $dir/x.pem\n"
        "[extra]\npoll_count = 3\n"
    )
    values = config_options(config, "cmp:extra")
    assert values == {"dir": "/pki", "srv_ref": "cmp", "rsp_cert": "/pki/x.pem", "poll_count": "3"}
    with pytest.raises(InputError, match="no \\[missing\\] section"):
        config_options(config, "missing")


def test_mock_command_reads_the_config_file(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sanscmp.app.cli import main

    (tmp_path / "cmp.cnf").write_text("[cmp]\nsrv_ref = r\nsrv_secret = pass:s\nfailure = 99\n")
    run = CliRunner().invoke(main, ["mock", "-config", str(tmp_path / "cmp.cnf"), "-port", "1"])
    assert run.exit_code != 0
    assert "-failure out of range" in run.output


_T0 = x509.load_pem_x509_certificate(pki().ca_cert.public_bytes(Encoding.PEM)).not_valid_before_utc


def _crl() -> x509.CertificateRevocationList:
    test_pki = pki()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(test_pki.ca_cert.subject)
        .last_update(_T0.replace(year=_T0.year + 1))
        .next_update(_T0.replace(year=_T0.year + 2))
    )
    return builder.sign(test_pki.ca_key, hashes.SHA256())


def _defaults(**values: Any) -> dict[str, Any]:
    flags = (
        "send_error",
        "send_unprotected",
        "send_unprot_err",
        "accept_unprotected",
        "accept_unprot_err",
        "accept_raverified",
        "grant_implicitconf",
    )
    return {**dict.fromkeys(flags, False), **values}


def test_rsp_key_answers_central_key_generation() -> None:
    clock = FixedClock()
    server = mock_server(clock, key_out=NEW_KEY)
    client = make_client(clock=clock, kga_trust=pki().trust)
    spec = CertRequestSpec(central_keygen=True, subject=name("mock client"))
    result = perform(server, client.ir([spec]))
    assert result.certificates[0] == ISSUED
    assert result.private_keys[0].public_key() == NEW_KEY.public_key()
    without_key = mock_server(clock)
    refused = perform(without_key, make_client(clock=clock, seed=b"2").ir([spec]))
    assert refused.fail_info == {"badRequest"}


def test_answers_are_logged_one_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    from sanscmp.app.mock_command import _log

    clock = FixedClock()
    server = mock_server(clock, send_error=True)
    _log(server.process_request(make_client(clock=clock).genm([]).request.dump()))
    assert capsys.readouterr().err == (
        "CMP info: sending error: rejection (badRequest): error processing message\n"
    )
