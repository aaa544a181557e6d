package cli

import "runtime/debug"

// version is set by the image's and the Makefile's builds:
// -ldflags "-X github.com/s3clone/s3clone/internal/cli.version=V".
var version string

// Version is this build's version: the one the build set, else the module
// version and VCS revision from the build information, or "devel".
func Version() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+dirty"
			}
		}
	}
	if rev != "" {
		v += " " + rev[:min(12, len(rev))] + modified
	}
	return v
}
