"""Kangqiao (康桥): a FHIR R4-native platform for a county medical community (县域医共体)."""

__version__ = "0.1.0"
