package deploy

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/s3clone/s3clone/test/testbed"
)

// dockerfile is deploy/Dockerfile's instructions, continuation lines joined.
func dockerfile(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	cur := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") || (line == "" && cur == "") {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur += s + " "
			continue
		}
		if cur+line != "" {
			out = append(out, cur+line)
		}
		cur = ""
	}
	return out
}

// TestDockerfileShape checks what the issue asks of the image: more than
// one stage, a pinned Go matching go.mod, and a final stage that runs as a
// non-root user.
func TestDockerfileShape(t *testing.T) {
	lines := dockerfile(t)
	var froms []string
	user, goArg := "", ""
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "FROM "):
			froms = append(froms, l)
			user = "" // USER applies per stage: only the last stage's counts
		case strings.HasPrefix(l, "USER "):
			user = strings.TrimSpace(strings.TrimPrefix(l, "USER "))
		case strings.HasPrefix(l, "ARG GO_VERSION="):
			goArg = strings.TrimPrefix(l, "ARG GO_VERSION=")
		}
	}
	if len(froms) < 2 {
		t.Errorf("%d stages: want a build stage and a small final stage", len(froms))
	}
	last := froms[len(froms)-1]
	if !strings.Contains(last, "distroless/static") && !strings.Contains(last, "scratch") {
		t.Errorf("final stage %q: want a static base (distroless/static or scratch)", last)
	}
	if strings.HasSuffix(last, ":latest") || !strings.Contains(last, ":") {
		t.Errorf("final stage %q: pin the base image's tag", last)
	}
	if uid, _, _ := strings.Cut(user, ":"); user == "" || uid == "0" || uid == "root" {
		t.Errorf("final stage runs as %q: want a non-root user", user)
	}
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	// The image is built with the toolchain go.mod names (the one make test
	// builds and checks for vulnerabilities with), not merely the oldest
	// Go the module accepts.
	toolchain := regexp.MustCompile(`(?m)^toolchain go(\S+)$`).FindSubmatch(mod)
	if toolchain == nil || string(toolchain[1]) != goArg {
		t.Errorf("Dockerfile GO_VERSION %q, go.mod's toolchain line %q: keep them equal", goArg, toolchain)
	}
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if toolchain != nil && !strings.Contains(string(makefile), "export GOTOOLCHAIN := go"+string(toolchain[1])+"\n") {
		t.Errorf("the Makefile does not export GOTOOLCHAIN=go%s, go.mod's toolchain", toolchain[1])
	}
}

// TestDockerfileCrossCompiles: the stage that runs go build runs on the
// build machine's platform (FROM --platform=$BUILDPLATFORM) and only the
// final stage is the target's, so `docker build --platform linux/amd64` on
// an ARM machine compiles natively for amd64 (GOOS and GOARCH from the
// target: TestDockerfileBuildsStaticBinaries) instead of emulating amd64 to
// run the Go toolchain. The operator's guide builds for linux/amd64.
func TestDockerfileCrossCompiles(t *testing.T) {
	var stages [][]string
	for _, l := range dockerfile(t) {
		if strings.HasPrefix(l, "FROM ") {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], l)
		}
	}
	builds := 0
	for i, st := range stages {
		from := strings.Fields(st[0])
		if slices.ContainsFunc(st, func(l string) bool { return strings.HasPrefix(l, "RUN ") && strings.Contains(l, "go build") }) {
			builds++
			if len(from) < 2 || from[1] != "--platform=$BUILDPLATFORM" {
				t.Errorf("the go build stage is %q: want FROM --platform=$BUILDPLATFORM, so that it runs natively and cross-compiles", st[0])
			}
		}
		if i == len(stages)-1 && strings.Contains(st[0], "--platform") {
			t.Errorf("the final stage is %q: a --platform there would pin the image's platform", st[0])
		}
	}
	if builds != 1 {
		t.Errorf("%d stages run go build, want one", builds)
	}
	guide, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"docker build --platform linux/amd64 -f deploy/Dockerfile", "PLATFORM=linux/arm64 make image"} {
		if !strings.Contains(string(guide), want) {
			t.Errorf("docs/operations.md does not say %q", want)
		}
	}
}

// TestDockerfileBuildsStaticBinaries runs the Dockerfile's own go build line
// (no Docker engine here) as the builder runs it for each platform the
// template offers (TARGETOS and TARGETARCH set per platform), and checks
// each binary is for that machine and needs no dynamic loader or shared
// library, as distroless/static has none.
func TestDockerfileBuildsStaticBinaries(t *testing.T) {
	// The build's RUN sees only the ARGs its stage declares (after its
	// FROM): an undeclared TARGETARCH is empty there, and Go builds for the
	// build host.
	var build string
	declared := map[string]string{} // in the build's stage, before its RUN
	for _, l := range dockerfile(t) {
		if strings.HasPrefix(l, "FROM ") && build == "" {
			clear(declared)
		}
		if strings.HasPrefix(l, "RUN ") && strings.Contains(l, "go build") {
			build = l
		}
		if arg, ok := strings.CutPrefix(l, "ARG "); ok && build == "" {
			name, value, _ := strings.Cut(arg, "=")
			declared[name] = value
			// A default would override the builder's per-platform value.
			if strings.HasPrefix(name, "TARGET") && strings.Contains(arg, "=") {
				t.Errorf("%q gives the platform a default, which wins over the builder's: declare it without one", l)
			}
		}
	}
	for _, name := range []string{"TARGETOS", "TARGETARCH", "VERSION"} {
		if _, ok := declared[name]; !ok {
			t.Errorf("ARG %s is not declared in the build's stage: its RUN would see it empty", name)
		}
	}
	environ := func(vars map[string]string) []string {
		var env []string
		for _, kv := range os.Environ() {
			if name, _, _ := strings.Cut(kv, "="); name != "TARGETOS" && name != "TARGETARCH" && name != "VERSION" {
				env = append(env, kv)
			}
		}
		for name, v := range vars {
			if _, ok := declared[name]; ok {
				env = append(env, name+"="+v)
			}
		}
		return env
	}
	line := regexp.MustCompile(`CGO_ENABLED=0 GOOS=\$TARGETOS GOARCH=\$TARGETARCH go build .*$`).FindString(build)
	if line == "" || !strings.Contains(line, "/out/") {
		t.Fatalf("no CGO_ENABLED=0 go build -o /out/ line with GOOS/GOARCH from the target platform in %q", build)
	}
	// The builds share nothing with the tests' own (-trimpath and
	// CGO_ENABLED=0 change every package's build, the standard library's
	// too): on an empty build cache they take longer than every unit test
	// together, so make test-unit checks the line and make test runs it.
	if os.Getenv(testbed.UnitEnv) != "" {
		t.Skipf("$%s is set: the line is checked, the builds run in make test", testbed.UnitEnv)
	}
	context := buildContext(t)
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} // CpuArchitecture X86_64 and ARM64
	for arch, machine := range machines {
		out := t.TempDir()
		// RUN runs its line with /bin/sh -c in the source directory: one
		// holding only what the build stage copies in.
		cmd := exec.Command("/bin/sh", "-c", strings.ReplaceAll(line, "/out/", out+"/"))
		cmd.Dir = context
		cmd.Env = environ(map[string]string{"TARGETOS": "linux", "TARGETARCH": arch, "VERSION": "v9.8.7-test"})
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %s: %v\n%s", arch, line, err, b)
		}
		for _, name := range []string{"planner", "worker"} {
			path := filepath.Join(out, name)
			f, err := elf.Open(path)
			if err != nil {
				t.Fatalf("%s/%s: %v", arch, name, err)
			}
			if f.Machine != machine {
				t.Errorf("%s/%s is for %s, want %s", arch, name, f.Machine, machine)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Errorf("%s/%s asks for a dynamic loader: not static", arch, name)
				}
			}
			if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
				t.Errorf("%s/%s needs shared libraries %v", arch, name, libs)
			}
			if f.Section(".symtab") != nil {
				t.Errorf("%s/%s keeps its symbol table: -s -w were lost", arch, name)
			}
			f.Close()
			fi, _ := os.Stat(path)
			t.Logf("%s/%s: %.1f MiB", arch, name, float64(fi.Size())/(1<<20))
		}
		if arch != runtime.GOARCH {
			continue // cannot run here
		}
		if b, _ := exec.Command(filepath.Join(out, "worker"), "-h").CombinedOutput(); !strings.Contains(string(b), "usage: worker") {
			t.Errorf("the static worker does not run: %s", b)
		}
		for _, name := range []string{"planner", "worker"} {
			if b, _ := exec.Command(filepath.Join(out, name), "--version").CombinedOutput(); !strings.HasPrefix(string(b), name+" v9.8.7-test ") {
				t.Errorf("%s --version: %q, want the build's VERSION", name, b)
			}
		}
	}
}

// buildContext is a directory holding what the build stage copies from the
// source (its COPY lines without --from), each of which .dockerignore must
// let in: what the builder has, and nothing else, so a package the build
// needs that the image leaves out fails here as it would in docker build.
func buildContext(t *testing.T) string {
	t.Helper()
	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{}
	for _, l := range strings.Split(string(ignore), "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), "!"); ok {
			allowed[strings.TrimSuffix(p, "/")] = true
		}
	}
	dir := t.TempDir()
	copied := 0
	for _, l := range dockerfile(t) {
		args, ok := strings.CutPrefix(l, "COPY ")
		if !ok || strings.HasPrefix(args, "--from") {
			continue
		}
		fields := strings.Fields(args)
		for _, src := range fields[:len(fields)-1] {
			if !allowed[src] {
				t.Errorf("the Dockerfile copies %s, which .dockerignore leaves out of the build's context", src)
				continue
			}
			if b, err := exec.Command("cp", "-r", filepath.Join("..", src), filepath.Join(dir, src)).CombinedOutput(); err != nil {
				t.Fatalf("copy %s: %v\n%s", src, err, b)
			}
			copied++
		}
	}
	if copied < 4 {
		t.Fatalf("the build stage copies %d paths, want go.mod, go.sum and the packages", copied)
	}
	return dir
}
