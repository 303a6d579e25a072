"""Provider adapters driven through the real `twilio` and `sendgrid` SDKs against the sandbox.

Nothing of ours is mocked: the SDKs make real HTTP calls over loopback to
`SandboxServer`, and signed callbacks land in a real `WebhookReceiver`.
"""
