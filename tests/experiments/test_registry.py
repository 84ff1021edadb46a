"""The registries are the only place per-model knowledge lives: the built-in mixtures register
through the public register_model, and nothing else in experiments/ branches on a model's,
a family's or a parameter's name."""

import ast
import inspect
from pathlib import Path

import experiments
from experiments import mixtures
from experiments.datasets import FAMILIES
from experiments.models_registry import MODELS, ModelEntry, register_model

PACKAGE = Path(experiments.__file__).parent


def test_builtins_register_through_the_public_decorator():
    for module in (mixtures.gaussian, mixtures.poisson, mixtures.bernoulli):
        calls = [n for n in ast.walk(ast.parse(inspect.getsource(module)))
                 if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "register_model"]
        assert len(calls) == 1 and not calls[0].args[1:]  # the name, then keywords only
    assert experiments.register_model is register_model
    assert all(isinstance(e, ModelEntry) for e in MODELS.values())
    for name in ("gaussian_mixture", "poisson_mixture", "bernoulli_mixture"):
        entry = MODELS[name]
        assert entry.em_estimator and entry.build_prior and entry.initial_values
        assert entry.log_joint_matrix and entry.align_param and entry.default_for_family


def test_no_branching_on_model_family_or_parameter_names_outside_the_registrations():
    names = set(MODELS) | set(FAMILIES) | {p for e in MODELS.values() for p in e.param_names}
    names.discard("weights")  # every mixture's weights (K,): a convention, not one model's
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "mixtures" or rel == Path("datasets/families.py"):
            continue  # the registrations themselves
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(
                    isinstance(c, ast.Constant) and c.value in names for c in ast.walk(node)):
                found.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "\n".join(found)


def test_methods_all_on_a_vae_expands_to_the_amortized_methods_only():
    """The generic fitters (MAP, VI over global sites, NUTS) cannot fit a model with local
    latents; on a VAE, methods = "all" gives only the amortized methods, and the mixtures
    still get every generic one."""
    from experiments.config import parse_config
    from experiments.methods import METHODS
    from experiments.models_registry import MODELS

    cfg = parse_config({"grid": [{"datasets": ["digits_binary"], "model": "vae",
                                  "methods": "all"}]})
    assert {c.method for c in cfg.cells} == {"vae_elbo", "vae_iwae"}
    for name in ("map", "mle_sgd", "vi_mean_field", "vi_full_rank", "nuts"):
        assert not METHODS[name].supports(MODELS["vae"])
        assert METHODS[name].supports(MODELS["gaussian_mixture"])
        assert METHODS[name].supports(MODELS["bernoulli_mixture"])
