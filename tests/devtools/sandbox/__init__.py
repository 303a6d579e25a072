"""The sandbox speaks Twilio's and SendGrid's wire formats, and can be steered.

Requests come from the real SDKs, or from plain HTTP (httpx) where the point is
the raw wire shape; callbacks and inbound texts land in a real `WebhookReceiver`.
"""
