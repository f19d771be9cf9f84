from intrada.demo.synthetic.scene import *  # noqa: F401,F403
