import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

SHARED = ROOT.parent / "shared"
SHARED_DATA = SHARED / "data" / "cifar10-jpeg-dev.tar.gz"
SHARED_WEIGHTS = SHARED / "weights" / "resnet50_cifar10_30k_notop.weights.h5"
