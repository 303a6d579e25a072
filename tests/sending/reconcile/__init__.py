"""Reconciliation of `unknown` messages against the provider, through the real SDKs.

Rows become `unknown` the two ways they do in production: a provider call that
times out (the sandbox's `timeout` fault, which still accepts the message unless
told to fail it), or a worker that claimed a batch and died (`claim_due`
committed, then its lease runs out). The sandbox (tests/sending/conftest.py) stands
in for Twilio and SendGrid at the network edge; nothing of ours is mocked.
"""
