package cli

import (
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// AddVersion gives root a --version flag that prints the module's version
// and the commit it was built from, as the Go toolchain recorded them.
func AddVersion(root *cobra.Command) {
	root.Version = Version()
	root.SetVersionTemplate("{{.Name}} {{.Version}}\n")
}

// Version is "<module version> (commit <rev>[, modified], <time>, <go>)"
// from the build information; "unknown" without any.
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	var facts []string
	if rev := settings["vcs.revision"]; rev != "" {
		commit := "commit " + rev[:min(len(rev), 12)]
		if settings["vcs.modified"] == "true" {
			commit += ", modified"
		}
		facts = append(facts, commit)
	}
	if t := settings["vcs.time"]; t != "" {
		facts = append(facts, t)
	}
	facts = append(facts, info.GoVersion)
	return info.Main.Version + " (" + strings.Join(facts, ", ") + ")"
}
