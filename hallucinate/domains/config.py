"""The settings of a multi-domain episodic run: the classifier's (`EpisodicConfig`, so that `build_classifier`,
evaluation and checkpoints take it as they are) plus the domains it trains on, the one it selects on, and the
trainer."""
import dataclasses
from dataclasses import dataclass

from ..training.config import EpisodicConfig

# aggregate: plain multi-domain training; fwt_fixed: feature-wise transformation layers at their initial values;
# lft: the two steps that learn those layers (Tseng et al. 2020); mldg: meta-learning domain generalisation (Li et al.
# 2018). Every one draws a pseudo-seen and a pseudo-unseen domain each episode (see `hallucinate.domains.training`).
TRAINERS = ("aggregate", "fwt_fixed", "lft", "mldg")
DOMAIN_SAMPLING = ("uniform", "classes")
# The trainers that use the pseudo-unseen domain's episode, and so need two training domains at least.
TWO_DOMAIN_TRAINERS = ("lft", "mldg")
# Learners that fit a head inside forward on pre-trained features: nothing for a second step to differentiate.
FITTED_HEADS = ("baseline", "baseline_pp", "logistic")


@dataclass(frozen=True)
class MultiDomainConfig(EpisodicConfig):
    """Episodic training over several domains (data set names of `hallucinate.data.open_store`, all of one image
    shape: 1x28x28 here), each episode from a domain drawn at random.

    ``dataset`` names the data set whose image preparation the classifier carries (``transform``: for "omniglot",
    dark ink on a light background, inverted and resized as an Omniglot PNG) and the one `hallucinate eval`
    evaluates when not told another; it must have the domains' number of channels.

    Model selection uses the **val split** of ``val_domain``: classes no training split holds. For "noto_glyphs"
    that split is printed glyphs of other scripts (those of Omniglot's Vinyals val alphabets) than its train split's,
    so it is a domain neither trained on nor tested even when noto_glyphs' train split is a training domain. A
    leave-one-domain-out run names its left-out domain in ``test_domain``, which may be neither a training domain
    nor ``val_domain``; the user-facing model trains on every domain and leaves ``test_domain`` empty."""

    domains: str = "omniglot,noto_glyphs,handwriting_fonts,hershey,cifar_fs_gray"  # comma-separated training domains
    val_domain: str = "noto_glyphs"
    test_domain: str = ""  # the left-out domain of a leave-one-domain-out run, recorded and checked ("": none)
    trainer: str = "lft"
    domain_sampling: str = "uniform"  # the domains of an episode: "uniform", or "classes" (by their class counts)
    fwt_gamma_init: float = 0.3  # theta_gamma of every feature-wise layer: the scale's noise is softplus of it
    fwt_beta_init: float = 0.5  # theta_beta: the shift's
    fwt_lr: float = 1e-3  # lft: Adam on the layers' parameters (weight decay 1e-8, as Tseng et al.)
    # lft: the virtual SGD step of step 1, theta - inner_lr * g (Tseng et al. take the model optimizer's learning
    # rate, lr); mldg: alpha of its virtual step
    inner_lr: float = 1e-3
    mldg_beta: float = 1.0  # mldg: weight of the pseudo-unseen loss after the virtual step

    def __post_init__(self):
        super().__post_init__()
        if self.trainer not in TRAINERS:
            raise ValueError(f"unknown trainer {self.trainer!r}; valid: {', '.join(TRAINERS)}")
        if self.domain_sampling not in DOMAIN_SAMPLING:
            raise ValueError(f"unknown domain_sampling {self.domain_sampling!r}; valid: {', '.join(DOMAIN_SAMPLING)}")
        names = self.training_domains
        if not names or any(not name for name in names):
            raise ValueError(f"domains must be comma-separated data set names, got {self.domains!r}")
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"domains names {', '.join(repeated)} more than once: {self.domains!r}")
        if self.trainer in TWO_DOMAIN_TRAINERS and len(names) < 2:
            raise ValueError(f"trainer {self.trainer!r} draws a pseudo-seen and a pseudo-unseen domain every episode "
                             f"and needs at least 2 training domains, got {self.domains!r}")
        if not self.val_domain:
            raise ValueError("val_domain must name the data set whose val split selects the model")
        if self.test_domain and self.test_domain in names:
            raise ValueError(f"test_domain {self.test_domain!r} is left out of training, but domains names it: "
                             f"{self.domains!r}")
        if self.test_domain and self.val_domain == self.test_domain:
            raise ValueError(f"val_domain {self.val_domain!r} is the tested domain: select the model on a domain "
                             f"neither trained on nor tested (another domain's val split)")
        if self.meta_batch != 1:
            raise ValueError(f"the multi-domain trainers make one optimizer step per episode (pair); meta_batch must "
                             f"be 1, got {self.meta_batch}")
        if self.learner in FITTED_HEADS or self.pretrain_epochs > 0:
            raise ValueError(f"learner {self.learner!r} (pretrain_epochs={self.pretrain_epochs}) fits a head on "
                             f"pre-trained features; the multi-domain trainers train a learner episodically end to end "
                             f"(protonet, matching, relation)")

    @property
    def training_domains(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.domains.split(","))

    def classifier_config(self) -> EpisodicConfig:
        """The classifier's settings alone: what a checkpoint's ``config`` holds, so that it loads as any
        classification checkpoint does."""
        return EpisodicConfig(**{field.name: getattr(self, field.name) for field in dataclasses.fields(EpisodicConfig)})
