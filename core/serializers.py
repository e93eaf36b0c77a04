"""Serializer pieces shared by the apps' APIs."""

from collections.abc import Mapping

from rest_framework import serializers


class StrictJSONBody:
    """Mixed into a JSON body's serializer, so that the body is taken as its
    OpenAPI schema says, where DRF is lenient:

    - a property the serializer does not declare is refused, naming it (DRF
      drops it without a word: a misspelt `"timout": 500` ran with the
      default); the schema says `additionalProperties: false`
      (core.openapi.EnvelopeAutoSchema);
    - a text field, or the items of a list or object of text, takes only
      strings (DRF reads 12 as "12").
    """

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            errors = {name: ["not a field of this body"] for name in sorted(set(data) - set(self.fields))}
            for name, field in self.fields.items():
                wrong = _not_text(field, data[name]) if name in data else None
                if wrong:
                    errors[name] = wrong
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


def _not_text(field, value):
    """The error detail when a text field, or a list or object of text,
    holds anything but strings; None when it does not."""
    if isinstance(field, serializers.CharField):
        return None if isinstance(value, str) or (value is None and field.allow_null) else ["must be a string"]
    if isinstance(getattr(field, "child", None), serializers.CharField):
        items = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, list) else ()
        wrong = {key: ["must be a string"] for key, item in items if not isinstance(item, str)}
        return wrong or None
    return None
