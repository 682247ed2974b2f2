"""Composability: multiplexed teacher-student block pre-training and assembly."""

from wootz_keras.compose.assemble import Assembler, assemble, copy_model  # noqa: F401
from wootz_keras.compose.blocks import PretrainedBlocks, check_plan_matches  # noqa: F401
from wootz_keras.compose.pretrain import Multiplexer, pretrain_blocks  # noqa: F401
