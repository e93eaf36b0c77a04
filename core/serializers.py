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
      strings (DRF reads 12 as "12"); a boolean only true or false (DRF
      reads 0, 1, "yes" as booleans); an integer only a JSON number that is
      whole (DRF reads "5" as 5).
    """

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            errors = {name: ["not a field of this body"] for name in sorted(set(data) - set(self.fields))}
            for name, field in self.fields.items():
                wrong = _wrong_json_type(field, data[name]) if name in data else None
                if wrong:
                    errors[name] = wrong
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


def _wrong_json_type(field, value):
    """The error detail when a value is not of its field's JSON type (a text
    field, or a list or object of text, holding anything but strings; a
    boolean or integer field anything but a JSON boolean or integer); None
    when it is."""
    if value is None and field.allow_null:
        return None
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else ["must be true or false"]
    if isinstance(field, serializers.IntegerField):
        # JSON Schema counts 5.0 as an integer; "5" and true are not.
        integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        return None if integral and not isinstance(value, bool) else ["must be an integer"]
    if isinstance(field, serializers.CharField):
        return None if isinstance(value, str) else ["must be a string"]
    if isinstance(getattr(field, "child", None), serializers.CharField):
        items = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, list) else ()
        wrong = {key: ["must be a string"] for key, item in items if not isinstance(item, str)}
        return wrong or None
    return None
