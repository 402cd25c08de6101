"""A job whose memory and CPU change over time, for the resource monitor to draw: it allocates STEP_MB
more memory each second for STEPS seconds (keeping one core busy), then frees it and waits a moment.

    python3 examples/scripts/memory_ramp.py STEP_MB STEPS
"""

import sys
import time

step_mb, steps = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(steps):
    block = bytearray(step_mb * 1024 * 1024)
    for i in range(0, len(block), 4096):    # touch every page: resident, not just reserved
        block[i] = 1
    held.append(block)
    end = time.time() + 1
    while time.time() < end:                # busy: the CPU line shows it
        pass
print(f"peaked at about {step_mb * steps} MB over {steps} s")
held.clear()
time.sleep(1)
