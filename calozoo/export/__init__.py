"""Export to TensorFlow Serving: versioned SavedModels, server config, warm-up requests, local checks."""

from calozoo.export.savedmodel import SIGNATURE_KEYS, ServingModule, export_model, saved_model_versions

__all__ = ["export_model", "ServingModule", "saved_model_versions", "SIGNATURE_KEYS"]
