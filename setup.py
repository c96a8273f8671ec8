from setuptools import find_packages, setup

setup(
    name="hallucinate",
    version="0.1.0",
    description="Few-shot image classification with data hallucination",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["hallucinate", "hallucinate.*"]),
    package_data={"hallucinate.data": ["splits/cifar_fs_bertinetto/*"]},
    python_requires=">=3.10",
    install_requires=["torch>=2.2,<2.15", "torchvision>=0.17,<0.30", "numpy", "pillow", "lmdb", "albumentations>=2.0",
                      "tqdm", "pytorch-fid>=0.3", "matplotlib", "torchmetrics>=1.4", "faster-coco-eval>=1.6"],
    extras_require={"dev": ["pytest"], "bench": ["easyfsl==1.5.0"]},
    entry_points={"console_scripts": ["hallucinate=hallucinate.cli:main"]},
)
