"""The baselines' entries in the one method registry (eval.registry): every comparison method of the four
papers, with the short names the papers' tables use as aliases (MEED: "Grad", "GI")."""
from baselines.amortised import CXPlain, L2X, VIBI
from baselines.cam import GradCAM, GuidedGradCAM
from baselines.classifier_agnostic import ClassifierAgnostic
from baselines.controls import CenteredGaussian, Random
from baselines.gradients import (Gradient, GradientInput, GuidedBackprop, IntegratedGradients, Saliency, SmoothGrad,
                                 VarGrad)
from baselines.extremal import ExtremalPerturbation
from baselines.infd import INFD
from baselines.meaningful import MeaningfulPerturbation
from baselines.perceptual_ball import PerceptualBall
from baselines.perturbation import Occlusion
from baselines.realtime import RealTimeSaliency
from baselines.rise import RISE
from baselines.surrogates import LIME, KernelSHAP
from eval.registry import register

#: (class, aliases, paper) in registry order.
METHODS = (
    (Gradient, ("grad",), "MEED Appendix B.2 (Grad)"),
    (Saliency, (), "Simonyan et al., ICLR workshop 2014"),
    (GradientInput, ("gi",), "Shrikumar et al. 2016; MEED Appendix B.2 (GI)"),
    (IntegratedGradients, ("ig",), "Sundararajan et al., ICML 2017"),
    (SmoothGrad, (), "Smilkov et al. 2017"),
    (VarGrad, (), "Adebayo et al., NeurIPS 2018"),
    (GuidedBackprop, (), "Springenberg et al., ICLR workshop 2015"),
    (GradCAM, (), "Selvaraju et al., ICCV 2017"),
    (GuidedGradCAM, (), "Selvaraju et al., ICCV 2017"),
    (Occlusion, (), "Zeiler & Fergus, ECCV 2014"),
    (RISE, (), "Petsiuk et al., BMVC 2018"),
    (LIME, (), "Ribeiro et al., KDD 2016"),
    (KernelSHAP, (), "Lundberg & Lee, NeurIPS 2017"),
    (MeaningfulPerturbation, ("mp",), "Fong & Vedaldi, ICCV 2017"),
    (ExtremalPerturbation, ("ep",), "Fong, Patrick & Vedaldi, ICCV 2019"),
    (PerceptualBall, ("ap",), "Elliott, Law & Russell, CVPR 2021"),
    (INFD, (), "Yeh et al., NeurIPS 2019"),
    (Random, (), "control"),
    (CenteredGaussian, (), "control (Gupta et al., NeurIPS 2022)"),
    (L2X, (), "Chen et al., ICML 2018"),
    (VIBI, (), "Bang et al., AAAI 2021"),
    (CXPlain, (), "Schwab & Karlen, NeurIPS 2019"),
    (RealTimeSaliency, ("realtime",), "Dabkowski & Gal, NeurIPS 2017"),
    (ClassifierAgnostic, ("ca",), "Zolna et al. 2020; Phang, Park & Geras 2020"),
)

for _cls, _aliases, _paper in METHODS:
    register(_cls.name, _cls, aliases=_aliases, paper=_paper)
