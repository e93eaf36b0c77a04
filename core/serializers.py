"""Serializer pieces shared by the apps' APIs."""

from collections.abc import Mapping

from rest_framework import serializers


class RefusesUnknownFields:
    """Mixed into a body's serializer: a property it does not declare is a
    VALIDATION_ERROR naming it, where DRF would drop it without a word (a
    misspelt optional field, `"timout": 500`, ran with the default). The
    OpenAPI schema says so: `additionalProperties: false`
    (core.openapi.EnvelopeAutoSchema)."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["not a field of this body"] for name in unknown})
        return super().to_internal_value(data)
