"""Built-in extractors, one module each."""

from ...hookspecs import hookimpl
from .das import DAS
from .kmeans import KMeans
from .lda import LDA
from .logistic import Logistic
from .mean_diff import MeanDiff
from .pca import PCA
from .std_mean_diff import StdMeanDiff


@hookimpl
def register_extractors(register):
    for extractor in (MeanDiff(), StdMeanDiff(), PCA(), KMeans(), Logistic(), LDA(), DAS()):
        register(extractor)
