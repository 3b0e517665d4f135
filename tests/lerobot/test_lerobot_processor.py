# Adapted from LeRobot v0.4.4, tests/processor/test_diffusion_processor.py
# (https://github.com/huggingface/lerobot, tag v0.4.4). Copyright 2025 The HuggingFace Inc. team.
# Licensed under the Apache License, Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0); this file
# is distributed under the same license.
#
# LeRobot's processor tests for a policy type, run against the third-party type "ttfkit" (its
# pipelines have the same steps as the diffusion policy's). Changes from the original: imports and
# the policy (DiffusionConfig -> TtfkitConfig, make_diffusion_pre_post_processors ->
# make_ttfkit_pre_post_processors). Left out: the four tests that need CUDA or two GPUs
# (test_diffusion_processor_cuda, _accelerate_scenario, _multi_gpu, _bfloat16_device_float32_normalizer):
# they skip on a CPU machine, and ttfkit's default test run has no skipped tests.
"""Tests for the ttfkit policy processor (LeRobot's diffusion processor tests)."""

import tempfile

import torch

from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature
from lerobot.processor import (
    AddBatchDimensionProcessorStep,
    DataProcessorPipeline,
    DeviceProcessorStep,
    NormalizerProcessorStep,
    RenameObservationsProcessorStep,
    TransitionKey,
    UnnormalizerProcessorStep,
)
from lerobot.processor.converters import create_transition, transition_to_batch
from lerobot.utils.constants import ACTION, OBS_IMAGE, OBS_STATE
from lerobot_policy_ttfkit.configuration_ttfkit import TtfkitConfig
from lerobot_policy_ttfkit.processor_ttfkit import make_ttfkit_pre_post_processors


def create_default_config():
    """Create a default ttfkit configuration for testing."""
    config = TtfkitConfig()
    config.input_features = {
        OBS_STATE: PolicyFeature(type=FeatureType.STATE, shape=(7,)),
        OBS_IMAGE: PolicyFeature(type=FeatureType.VISUAL, shape=(3, 224, 224)),
    }
    config.output_features = {
        ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(6,)),
    }
    config.normalization_mapping = {
        FeatureType.STATE: NormalizationMode.MEAN_STD,
        FeatureType.VISUAL: NormalizationMode.IDENTITY,
        FeatureType.ACTION: NormalizationMode.MIN_MAX,
    }
    config.device = "cpu"
    return config


def create_default_stats():
    """Create default dataset statistics for testing."""
    return {
        OBS_STATE: {"mean": torch.zeros(7), "std": torch.ones(7)},
        OBS_IMAGE: {},  # No normalization for images
        ACTION: {"min": torch.full((6,), -1.0), "max": torch.ones(6)},
    }


def test_make_ttfkit_processor_basic():
    """Test basic creation of ttfkit processor."""
    config = create_default_config()
    stats = create_default_stats()

    preprocessor, postprocessor = make_ttfkit_pre_post_processors(config, stats)

    # Check processor names
    assert preprocessor.name == "policy_preprocessor"
    assert postprocessor.name == "policy_postprocessor"

    # Check steps in preprocessor
    assert len(preprocessor.steps) == 4
    assert isinstance(preprocessor.steps[0], RenameObservationsProcessorStep)
    assert isinstance(preprocessor.steps[1], AddBatchDimensionProcessorStep)
    assert isinstance(preprocessor.steps[2], DeviceProcessorStep)
    assert isinstance(preprocessor.steps[3], NormalizerProcessorStep)

    # Check steps in postprocessor
    assert len(postprocessor.steps) == 2
    assert isinstance(postprocessor.steps[0], UnnormalizerProcessorStep)
    assert isinstance(postprocessor.steps[1], DeviceProcessorStep)


def test_ttfkit_processor_with_images():
    """Test ttfkit processor with image observations."""
    config = create_default_config()
    stats = create_default_stats()

    preprocessor, postprocessor = make_ttfkit_pre_post_processors(
        config,
        stats,
    )

    # Create test data with images
    observation = {
        OBS_STATE: torch.randn(7),
        OBS_IMAGE: torch.randn(3, 224, 224),
    }
    action = torch.randn(6)
    transition = create_transition(observation, action)

    batch = transition_to_batch(transition)

    # Process through preprocessor

    processed = preprocessor(batch)

    # Check that data is batched
    assert processed[OBS_STATE].shape == (1, 7)
    assert processed[OBS_IMAGE].shape == (1, 3, 224, 224)
    assert processed[TransitionKey.ACTION.value].shape == (1, 6)


def test_ttfkit_processor_without_stats():
    """Test ttfkit processor creation without dataset statistics."""
    config = create_default_config()

    preprocessor, postprocessor = make_ttfkit_pre_post_processors(
        config,
        dataset_stats=None,
    )

    # Should still create processors
    assert preprocessor is not None
    assert postprocessor is not None

    # Process should still work
    observation = {
        OBS_STATE: torch.randn(7),
        OBS_IMAGE: torch.randn(3, 224, 224),
    }
    action = torch.randn(6)
    transition = create_transition(observation, action)

    batch = transition_to_batch(transition)

    processed = preprocessor(batch)
    assert processed is not None


def test_ttfkit_processor_save_and_load():
    """Test saving and loading ttfkit processor."""
    config = create_default_config()
    stats = create_default_stats()

    preprocessor, postprocessor = make_ttfkit_pre_post_processors(config, stats)

    with tempfile.TemporaryDirectory() as tmpdir:
        # Save preprocessor
        preprocessor.save_pretrained(tmpdir)

        # Load preprocessor
        loaded_preprocessor = DataProcessorPipeline.from_pretrained(
            tmpdir, config_filename="policy_preprocessor.json"
        )

        # Test that loaded processor works
        observation = {
            OBS_STATE: torch.randn(7),
            OBS_IMAGE: torch.randn(3, 224, 224),
        }
        action = torch.randn(6)
        transition = create_transition(observation, action)
        batch = transition_to_batch(transition)

        processed = loaded_preprocessor(batch)
        assert processed[OBS_STATE].shape == (1, 7)
        assert processed[OBS_IMAGE].shape == (1, 3, 224, 224)
        assert processed[TransitionKey.ACTION.value].shape == (1, 6)


def test_ttfkit_processor_identity_normalization():
    """Test that images with IDENTITY normalization are not normalized."""
    config = create_default_config()
    stats = create_default_stats()

    preprocessor, postprocessor = make_ttfkit_pre_post_processors(
        config,
        stats,
    )

    # Create test data
    image_value = torch.rand(3, 224, 224) * 255  # Large values
    observation = {
        OBS_STATE: torch.randn(7),
        OBS_IMAGE: image_value.clone(),
    }
    action = torch.randn(6)
    transition = create_transition(observation, action)

    batch = transition_to_batch(transition)

    # Process through preprocessor

    processed = preprocessor(batch)

    # Image should not be normalized (IDENTITY mode)
    # Just batched
    assert torch.allclose(processed[OBS_IMAGE][0], image_value, rtol=1e-5)


def test_ttfkit_processor_batch_consistency():
    """Test ttfkit processor with different batch sizes."""
    config = create_default_config()
    stats = create_default_stats()

    preprocessor, postprocessor = make_ttfkit_pre_post_processors(
        config,
        stats,
    )

    # Test with different batch sizes
    for batch_size in [1, 8, 32]:
        observation = {
            OBS_STATE: torch.randn(batch_size, 7) if batch_size > 1 else torch.randn(7),
            OBS_IMAGE: torch.randn(batch_size, 3, 224, 224) if batch_size > 1 else torch.randn(3, 224, 224),
        }
        action = torch.randn(batch_size, 6) if batch_size > 1 else torch.randn(6)
        transition = create_transition(observation, action)

        batch = transition_to_batch(transition)

        processed = preprocessor(batch)

        # Check correct batch size
        expected_batch = batch_size if batch_size > 1 else 1
        assert processed[OBS_STATE].shape[0] == expected_batch
        assert processed[OBS_IMAGE].shape[0] == expected_batch
        assert processed[TransitionKey.ACTION.value].shape[0] == expected_batch
