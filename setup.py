from setuptools import find_packages, setup

setup(
    name='intrada',
    version='1.0.0',
    description='IntraDA and ADVENT: unsupervised domain adaptation for semantic segmentation '
                '(faithful, modern reimplementation)',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(include=['advent', 'advent.*', 'entropy_rank', 'entropy_rank.*',
                                    'intrada', 'intrada.*']),
    package_data={'advent': ['dataset/cityscapes_list/*', 'dataset/gta5_list/*', 'dataset/synthia_list/*']},
    include_package_data=True,
    install_requires=[
        # torch 2.13.0's CPU wheel cannot load torchvision's operators; 2.14.1 + 0.29.1 pair up.
        'torch>=2.9,<=2.14.1,!=2.13.0',
        'torchvision>=0.24,<=0.29.1',
        'numpy>=1.24',
        'pillow>=10',
        'opencv-python-headless>=4.8',
        'pyyaml>=6',
        'easydict>=1.10',
        'tensorboard>=2.14',
        'tqdm>=4.60',
    ],
    extras_require={'test': ['pytest>=7']},
    entry_points={'console_scripts': [
        'intrada-pipeline=intrada.pipeline:main',
        'intrada-demo=intrada.demo.cli:main',
        'intrada-check=intrada.check:console_main',
        'intrada-predict=intrada.predict:main',
        'intrada-pseudo-label-quality=entropy_rank.quality:main',
    ]},
)
