"""Keep secret values out of everything a run leaves behind.

Redaction replaces the values themselves wherever they appear, in any
letter case (a hostname, for one, comes back lowercased); it cannot
recognise a value a plugin has otherwise transformed (reversed, encoded,
split).
"""

import json
import re

from quotas.secrets import MIN_SECRET_LENGTH

REDACTED = "[REDACTED]"


class Redactor:
    def __init__(self, secret_values):
        self.values = sorted(
            {str(v) for v in secret_values if v is not None and len(str(v)) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )
        # Longest first, so that a value containing another is redacted whole.
        self.pattern = re.compile("|".join(map(re.escape, self.values)), re.IGNORECASE) if self.values else None
        self.folded = [_fold(value) for value in self.values]

    def text(self, value):
        if not self.values or not value:
            return value
        return self.pattern.sub(REDACTED, value)

    def data(self, value):
        """Redact every string, dictionary keys included, in a JSON-like value."""
        if not self.values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.data(key): self.data(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(item) for item in value]
        return value

    def json_text(self, encoded):
        """Redact inside a JSON document's text, keeping it valid JSON.

        The document is decoded first, so that a value written with JSON
        escapes ("\\u0041" for "A") cannot slip past as different text.
        """
        if not self.values or encoded is None:
            return encoded
        try:
            decoded = json.loads(encoded)
        except ValueError:
            return self.text(encoded)
        return json.dumps(self.data(decoded), ensure_ascii=False)

    def trim_fragments(self, value):
        """Replace what is left of a secret at either end of a text cut
        before it was redacted (a cut through a value leaves a piece that
        `text` no longer recognises): the longest start that ends a value and
        the longest end that begins one, of MIN_SECRET_LENGTH characters or
        more. Ends that merely look like a value's start or end go too."""
        if not self.values or not value:
            return value
        folded = _fold(value)
        head = max(_overlap(folded[: len(secret) - 1][::-1], secret[::-1]) for secret in self.folded)
        tail = max(_overlap(folded[-len(secret) + 1 :], secret) for secret in self.folded)
        if head + tail >= len(value):
            return REDACTED
        return (REDACTED if head else "") + value[head : len(value) - tail] + (REDACTED if tail else "")


def _fold(text):
    """Lowercase for matching in any letter case, unless that would move
    positions (a few characters lowercase to two)."""
    folded = text.lower()
    return folded if len(folded) == len(text) else text


def _overlap(text, secret):
    """The length of the longest end of `text` that begins `secret`, if at
    least MIN_SECRET_LENGTH characters long; else 0."""
    start = secret[:MIN_SECRET_LENGTH]
    position = text.find(start)
    while position != -1:
        if secret.startswith(text[position:]):
            return len(text) - position
        position = text.find(start, position + 1)
    return 0
