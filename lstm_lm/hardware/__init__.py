"""The machine the program runs on: the device asked for (device.py), the CPU's features (machine.py), which
precisions run natively here (precision.py), and the C allocator's settings (allocator.py).

Imports: torch and the common modules only.
"""
