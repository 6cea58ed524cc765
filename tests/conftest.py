import os
import sys
import tarfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

SHARED = ROOT.parent / "shared"
SHARED_DATA = SHARED / "data" / "cifar10-jpeg-dev.tar.gz"
SHARED_WEIGHTS = SHARED / "weights" / "resnet50_cifar10_30k_notop.weights.h5"
SHARED_CLASS_SPLIT = SHARED / "weights" / "resnet50_cifar5_notop.weights.h5"


@pytest.fixture(scope="session")
def shared_images(tmp_path_factory):
    """The shared real CIFAR-10 images (a train/ and test/ folder of JPEGs), extracted once."""
    if not SHARED_DATA.is_file() or not SHARED_WEIGHTS.is_file():
        pytest.skip("../shared data or weights absent")
    out = tmp_path_factory.mktemp("shared")
    with tarfile.open(SHARED_DATA) as tar:
        tar.extractall(out, filter="data")
    return out / "cifar10-jpeg"
