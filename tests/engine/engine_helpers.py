"""Settings shared by the engine tests (a module, not conftest, so test files can import it by a unique name)."""

# ResNet-20 on 8x8 digits: about a second per epoch on one core.
TINY = {"img_size": 8, "batch_size": 64, "device": "cpu"}
