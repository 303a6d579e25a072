"""Providers: Twilio (SMS), SendGrid (email) and the outbox, each behind `base.Provider`."""
