"""The built-in demo: all three stages of IntraDA on generated street scenes, on the CPU
(`python -m intrada.demo`). The scene generator is the subpackage `synthetic`."""
