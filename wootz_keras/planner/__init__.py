"""Planner: modules, configuration space, Sequitur and tuning-block selection."""

from wootz_keras.planner.config_space import Config, ConfigSpace  # noqa: F401
from wootz_keras.planner.modules import Module, ModuleList, find_modules  # noqa: F401
from wootz_keras.planner.sequitur import build_grammar  # noqa: F401
from wootz_keras.planner.tuning_blocks import Block, Plan, composable_plan, plan_tuning_blocks  # noqa: F401
