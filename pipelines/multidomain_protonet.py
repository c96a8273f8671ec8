"""Prototypical networks (Conv-4) trained on several domains by plain aggregation (`aggregate`): each episode comes
from a domain drawn at random (the pseudo-seen domain of the other trainers' pairs, so every multi-domain pipeline
trains on the same episodes), one Adam step, no feature-wise layers: the baseline `lft`, `fwt_fixed` and `mldg` must
beat. ``domains=omniglot`` makes it the single-domain row of the table in the same episode shape.

Domains, validation, episode shape and budget as pipelines/multidomain_protonet_lft.py (see its docstring)."""
from hallucinate.domains.config import MultiDomainConfig
from hallucinate.domains.training import run_multidomain

CONFIG = MultiDomainConfig(dataset="omniglot", backbone="conv4", learner="protonet", hallucinator="none",
                           domains="omniglot,noto_glyphs,handwriting_fonts,hershey,cifar_fs_gray",
                           val_domain="noto_glyphs", test_domain="", trainer="aggregate",
                           n_way=5, k_shot=1, q_query=5, episodes=3000, lr=1e-3, lr_step=1000, lr_gamma=0.5,
                           val_every=250, val_episodes=300, val_n_way=5, val_k_shot=1)


def run(config: MultiDomainConfig = CONFIG, **options) -> dict:
    return run_multidomain(config, **options)
