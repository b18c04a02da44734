package io.vblk.tools.arch.cycle.b;

import io.vblk.tools.arch.cycle.a.CycleFixtureA;

/** Any thread: never instantiated. The other half of the package cycle ArchitectureTest must catch. */
public final class CycleFixtureB {
    CycleFixtureA other;

    private CycleFixtureB() {
    }
}
