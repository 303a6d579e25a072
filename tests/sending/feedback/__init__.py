"""Delivery feedback into pacing (PRODUCT.md "Delivery feedback").

The real `twilio` and `sendgrid` SDKs send to the sandbox; the sandbox signs its
status callbacks and events and posts them to a `WebhookReceiver` standing at
STEADY_PUBLIC_URL, and each test relays those exact requests (path, signature
headers, raw body) into the app. Codes the sandbox cannot produce on its own
path are posted as Twilio would sign them.
"""
