"""Keep secret values out of everything a run leaves behind."""

import json

REDACTED = "[REDACTED]"
# Very short values would redact ordinary words and numbers everywhere.
MIN_SECRET_LENGTH = 4


class Redactor:
    def __init__(self, secret_values):
        self.values = sorted(
            {str(v) for v in secret_values if v is not None and len(str(v)) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def text(self, value):
        if not self.values or not value:
            return value
        for secret in self.values:
            value = value.replace(secret, REDACTED)
        return value

    def json_text(self, encoded):
        """Redact inside a JSON document's text, keeping it valid JSON."""
        if not self.values or encoded is None:
            return encoded
        for secret in self.values:
            escaped = json.dumps(secret, ensure_ascii=False)[1:-1]
            encoded = encoded.replace(escaped, REDACTED)
        return encoded

    def lines(self, lines):
        return [self.text(line) for line in lines]
