"""Where a subscriber is, in time: a zone they named, or the zones their number fits.

PRODUCT.md, "Law": quiet hours wherever the subscriber lives. A subscriber has
either a named zone (``ZONE`` text, the preferences page, the signup form) or,
until they name one, the *candidate* zones of their number, and nudges keep the
hours of every candidate (``service.pacing.window``).

- ``numbers``: the candidate zones of a phone number (the numbering plan);
- ``places``: the zone a person means by ``ZONE <place>``;
- ``names``: known zone names, the common ones, and how a zone is named to a person;
- ``subscriber``: a named zone replacing the guesses, and the question that asks for one.

Each part is imported from its own module; this package re-exports nothing.
"""
