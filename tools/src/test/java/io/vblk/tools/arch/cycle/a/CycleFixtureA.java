package io.vblk.tools.arch.cycle.a;

import io.vblk.tools.arch.cycle.b.CycleFixtureB;

/** Any thread: never instantiated. One half of a package cycle that ArchitectureTest must catch. */
public final class CycleFixtureA {
    CycleFixtureB other;

    private CycleFixtureA() {
    }
}
