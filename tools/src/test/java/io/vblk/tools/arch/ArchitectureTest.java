package io.vblk.tools.arch;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.core.importer.Location;
import com.tngtech.archunit.lang.ArchRule;
import com.tngtech.archunit.lang.EvaluationResult;
import io.vblk.tools.arch.cycle.a.CycleFixtureA;
import io.vblk.virtio.queue.ForbiddenImportFixture;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.regex.Pattern;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static com.tngtech.archunit.library.dependencies.SlicesRuleDefinition.slices;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Home thread: the test's. No shared state beyond the imported classes.
 *
 * <p>The import rules of the brief and docs/ARCHITECTURE.md, checked on the main classes of every
 * module: no package cycles; aio depends on no other module; irqfd and drivers on aio only; the
 * server (everything under {@code io.vblk.virtio}) never imports the guest side ({@code io.vblk.guest});
 * the virtqueue never imports a device, vhost-user or the block layer; vhost-user knows the device
 * only through {@code io.vblk.virtio.device}; the daemon and the metrics binder never import the guest
 * side. The two fixture tests show that each kind of rule fails on a class that breaks it.
 */
class ArchitectureTest {
    /** Main classes only: the modules' target/classes folders or their jars, never test classes. */
    private static final ImportOption MAIN_CLASSES = new ImportOption() {
        private final Pattern mainJar = Pattern.compile(".*/vblk-(aio|irqfd|drivers|virtio|tools)-[^/]*(?<!-tests)\\.jar!?/.*");

        @Override
        public boolean includes(Location location) {
            return location.contains("/target/classes/") || location.matches(mainJar);
        }
    };

    static final ArchRule NO_PACKAGE_CYCLES = slices().matching("io.vblk.(**)").should().beFreeOfCycles()
            .because("the brief: module and package dependencies go one direction only");

    static final ArchRule AIO_DEPENDS_ON_NO_MODULE = noClasses().that().resideInAPackage("io.vblk.aio..")
            .should().dependOnClassesThat().resideInAnyPackage("io.vblk.irqfd..", "io.vblk.drivers..",
                    "io.vblk.virtio..", "io.vblk.guest..", "io.vblk.tools..")
            .because("the brief: aio depends on none of the others");

    static final ArchRule IRQFD_AND_DRIVERS_ON_AIO_ONLY = noClasses()
            .that().resideInAnyPackage("io.vblk.irqfd..", "io.vblk.drivers..")
            .should().dependOnClassesThat().resideInAnyPackage("io.vblk.virtio..", "io.vblk.guest..",
                    "io.vblk.tools..")
            .because("the brief: irqfd and drivers depend on aio only");

    static final ArchRule IRQFD_WITHOUT_DRIVERS = noClasses().that().resideInAPackage("io.vblk.irqfd..")
            .should().dependOnClassesThat().resideInAPackage("io.vblk.drivers..")
            .because("the brief: irqfd depends on aio only");

    static final ArchRule DRIVERS_WITHOUT_IRQFD = noClasses().that().resideInAPackage("io.vblk.drivers..")
            .should().dependOnClassesThat().resideInAPackage("io.vblk.irqfd..")
            .because("the brief: drivers depend on aio only");

    static final ArchRule SERVER_NEVER_IMPORTS_GUEST = noClasses()
            .that().resideInAnyPackage("io.vblk.virtio..", "io.vblk.tools.serve..", "io.vblk.tools.metrics..")
            .should().dependOnClassesThat().resideInAPackage("io.vblk.guest..")
            .because("the brief: the guest side is used by tests and bench and never imported by the server");

    static final ArchRule QUEUE_KNOWS_NO_DEVICE = noClasses().that().resideInAPackage("io.vblk.virtio.queue..")
            .should().dependOnClassesThat().resideInAnyPackage("io.vblk.virtio.blk..", "io.vblk.virtio.device..",
                    "io.vblk.virtio.vhost..", "io.vblk.drivers..", "io.vblk.irqfd..")
            .because("the brief: the queue package never imports the block device or vhost-user packages");

    static final ArchRule VHOST_KNOWS_DEVICE_BY_INTERFACE = noClasses()
            .that().resideInAPackage("io.vblk.virtio.vhost..")
            .should().dependOnClassesThat().resideInAnyPackage("io.vblk.virtio.blk..", "io.vblk.drivers..")
            .because("the brief: vhost-user wires a device to a socket and knows it only through its interface");

    static final List<ArchRule> RULES = List.of(NO_PACKAGE_CYCLES, AIO_DEPENDS_ON_NO_MODULE,
            IRQFD_AND_DRIVERS_ON_AIO_ONLY, IRQFD_WITHOUT_DRIVERS, DRIVERS_WITHOUT_IRQFD, SERVER_NEVER_IMPORTS_GUEST,
            QUEUE_KNOWS_NO_DEVICE, VHOST_KNOWS_DEVICE_BY_INTERFACE);

    private static JavaClasses main;

    @BeforeAll
    static void importMainClasses() {
        main = new ClassFileImporter().withImportOption(MAIN_CLASSES).importPackages("io.vblk");
    }

    @Test
    void importsEveryModule() {
        for (String pkg : List.of("io.vblk.aio", "io.vblk.irqfd", "io.vblk.drivers", "io.vblk.virtio.blk",
                "io.vblk.virtio.queue", "io.vblk.guest", "io.vblk.tools.serve")) {
            assertThat(main.stream().anyMatch(c -> c.getPackageName().startsWith(pkg)))
                    .as("main classes of %s imported", pkg).isTrue();
        }
        assertThat(main.stream().noneMatch(c -> c.getSimpleName().endsWith("Test")))
                .as("no test class imported").isTrue();
    }

    @Test
    void mainClassesKeepEveryRule() {
        StringBuilder failures = new StringBuilder();
        for (ArchRule rule : RULES) {
            EvaluationResult result = rule.evaluate(main);
            if (result.hasViolation()) {
                failures.append(result.getFailureReport()).append('\n');
            }
        }
        assertThat(failures).as("import rules").isEmpty();
    }

    @Test
    void aForbiddenImportFails() {
        JavaClasses bad = new ClassFileImporter().importClasses(ForbiddenImportFixture.class);
        assertThat(QUEUE_KNOWS_NO_DEVICE.evaluate(bad).hasViolation()).isTrue();
        assertThat(SERVER_NEVER_IMPORTS_GUEST.evaluate(bad).hasViolation()).isTrue();
    }

    @Test
    void aPackageCycleFails() {
        JavaClasses bad = new ClassFileImporter().importPackagesOf(CycleFixtureA.class,
                io.vblk.tools.arch.cycle.b.CycleFixtureB.class);
        assertThat(NO_PACKAGE_CYCLES.evaluate(bad).hasViolation()).isTrue();
    }
}
