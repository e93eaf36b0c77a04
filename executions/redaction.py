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

    def lines(self, lines):
        return [self.text(line) for line in lines]
