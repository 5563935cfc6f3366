"""The certification authority behind the engine: issuing policy, profiles and durable stores."""
