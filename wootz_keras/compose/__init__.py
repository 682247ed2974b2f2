"""Composability: multiplexed teacher-student block pre-training and assembly."""

from wootz_keras.compose.assemble import assemble, config_rates  # noqa: F401
from wootz_keras.compose.blocks import PretrainedBlocks, TrainedBlock, build_student  # noqa: F401
from wootz_keras.compose.pretrain import pretrain_blocks, teacher_fingerprint  # noqa: F401
