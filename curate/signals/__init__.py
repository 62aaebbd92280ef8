"""Per-sample training signals: proxy training, a recorder for your own loop, ingest."""

from curate.signals.proxy import train_proxy, train_signals
from curate.signals.recorder import LossRecorder, ingest_signals

__all__ = ["LossRecorder", "ingest_signals", "train_proxy", "train_signals"]
