package main

import (
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/config"
)

const (
	dockerfile  = "Dockerfile"
	composeFile = "deploy/compose.yaml"
	// imageWorkdir is the Dockerfile's WORKDIR, which holds what configs/ and bin/ hold in a
	// checkout: relative paths in the compose file resolve there as they do at the repo root.
	imageWorkdir = "/plato"
)

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command   []string `yaml:"command"`
	Ports     []string `yaml:"ports"`
	DependsOn []string `yaml:"depends_on"`
}

// TestDockerfileBuildsWhatComposeRuns checks the Dockerfile: a build stage that compiles
// cmd/plato and every plugin with CGO off, and a run stage that copies them to bin/ and bin/plugins
// under its working directory, with configs/, as a non-root user, plato as the entry point.
// Containers cannot run on the CI machines, so the files are read, not built.
func TestDockerfileBuildsWhatComposeRuns(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(platformtest.RepoRoot(), dockerfile))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	stages := regexp.MustCompile(`(?m)^FROM\s+\S+(\s+AS\s+(\S+))?`).FindAllStringSubmatch(df, -1)
	if len(stages) < 2 || stages[0][2] != "build" {
		t.Fatalf("want a multi-stage Dockerfile whose first stage is named build; stages %q", stages)
	}
	for what, re := range map[string]string{
		"CGO off in the build":                 `(?m)^ENV\s+.*CGO_ENABLED=0`,
		"plato built to /out/bin/plato":        `go build [^\n]*-o /out/bin/plato \./cmd/plato`,
		"every plugins/<name> with a main.go":  `for d in plugins/\*/;[^\n]*\n[^\n]*\[ -f "\$d/main\.go" \][^\n]*\n\s*go build [^\n]*-o "/out/bin/plugins/\$n" "\./plugins/\$n"`,
		"the binaries copied to /plato/bin":    `(?m)^COPY --from=build /out/bin/ /plato/bin/$`,
		"the configs copied to /plato/configs": `(?m)^COPY configs/ /plato/configs/$`,
		"the working directory /plato":         `(?m)^WORKDIR /plato$`,
		"plato as the entry point":             `(?m)^ENTRYPOINT \["/plato/bin/plato"\]$`,
		"a non-root user":                      `(?m)^USER (65532|nonroot)`,
	} {
		if !regexp.MustCompile(re).MatchString(df) {
			t.Errorf("the Dockerfile lacks %s (%s)", what, re)
		}
	}
	if strings.Contains(df, "USER root") || strings.Contains(df, "USER 0") {
		t.Error("the Dockerfile switches to root")
	}
	// What it builds is what `make build` builds: a main package at each path.
	for _, dir := range append([]string{"cmd/plato"}, pluginDirs(t)...) {
		if _, err := os.Stat(filepath.Join(platformtest.RepoRoot(), dir, "main.go")); err != nil {
			t.Errorf("%s: %v", dir, err)
		}
	}
}

// pluginDirs are the plugins/<name> directories with a main.go: what the Dockerfile's loop builds.
func pluginDirs(t *testing.T) []string {
	t.Helper()
	ms, err := filepath.Glob(filepath.Join(platformtest.RepoRoot(), "plugins", "*", "main.go"))
	if err != nil || len(ms) == 0 {
		t.Fatalf("no plugins/*/main.go: %v", err)
	}
	var dirs []string
	for _, m := range ms {
		dirs = append(dirs, filepath.Join("plugins", filepath.Base(filepath.Dir(m))))
	}
	return dirs
}

// TestComposeNamesBuiltCommandsAndShippedConfigs parses deploy/compose.yaml and checks that it runs
// the fleet the docs describe (NATS, two gateways, two state servers, ipconf) from the image the
// Dockerfile builds; that each command is a plato subcommand whose flags parse and whose
// configuration (the shipped file plus the --set flags, read by the same code the command uses)
// loads and validates; that every --set key is documented; that every port published is one a
// role listens on; and that the pipelines it runs name plugins the image has.
func TestComposeNamesBuiltCommandsAndShippedConfigs(t *testing.T) {
	root := platformtest.RepoRoot()
	b, err := os.ReadFile(filepath.Join(root, composeFile))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	documented := documentedConfigKeys(t)
	roles := map[string][]string{}
	var pipelineDirs []string
	for name, s := range f.Services {
		if s.Build == nil || filepath.Clean(filepath.Join(root, filepath.Dir(composeFile), s.Build.Context)) != filepath.Clean(root) || s.Build.Dockerfile != dockerfile {
			t.Errorf("service %s: build %+v; want the repository's %s", name, s.Build, dockerfile)
		}
		if len(s.Command) == 0 {
			t.Errorf("service %s runs no command", name)
			continue
		}
		sub := s.Command[0]
		if _, ok := commands()[sub]; !ok {
			t.Errorf("service %s: %q is not a plato command", name, sub)
			continue
		}
		roles[sub] = append(roles[sub], name)
		cfg, sets := loadComposeConfig(t, name, sub, s.Command[1:])
		for _, k := range sets {
			if !documented[docKey(k)] {
				t.Errorf("service %s: --set %s is not a key of docs/configuration.md", name, k)
			}
		}
		for _, p := range s.Ports {
			container := p[strings.LastIndex(p, ":")+1:]
			if !strings.Contains(strings.Join(s.Command, " "), "0.0.0.0:"+container) {
				t.Errorf("service %s publishes %s, but listens on no 0.0.0.0:%s", name, p, container)
			}
		}
		if cfg != nil && cfg.Pipeline.Dir != "" {
			pipelineDirs = append(pipelineDirs, cfg.Pipeline.Dir)
			if cfg.Pipeline.PluginDir != config.DefaultPluginDir {
				t.Errorf("service %s: pipeline.plugin_dir %q, the image has the plugins in %s", name, cfg.Pipeline.PluginDir, config.DefaultPluginDir)
			}
		}
	}
	for role, want := range map[string]int{"nats": 1, "gateway": 2, "state": 2, "ipconf": 1} {
		if len(roles[role]) < want {
			t.Errorf("%s runs %d %s services %v, want %d", composeFile, len(roles[role]), role, roles[role], want)
		}
	}
	if len(pipelineDirs) == 0 {
		t.Error("no state server of the compose file runs a pipeline")
	}
	plugins := map[string]bool{}
	for _, d := range pluginDirs(t) {
		plugins[filepath.Base(d)] = true
	}
	for _, dir := range pipelineDirs {
		checkPipelinePlugins(t, filepath.Join(root, dir), plugins)
	}
}

// loadComposeConfig parses a service's arguments with the flags its command registers and loads
// the configuration as the command would (relative paths from the repository root, as they are from
// the image's working directory). It returns the configuration and the --set keys.
func loadComposeConfig(t *testing.T, service, sub string, args []string) (*config.Config, []string) {
	t.Helper()
	fs := flag.NewFlagSet(service, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cf commonFlags
	var natsAddr *string
	addrKey := ""
	switch sub {
	case "nats":
		cf.registerFile(fs)
		natsAddr = fs.String("addr", "", "")
	case "ipconf", "gateway", "state", "demo":
		addrKey = roleAddrKeys[sub]
		cf.register(fs, addrKey)
	default:
		t.Errorf("service %s runs plato %s, not a role of a fleet", service, sub)
		return nil, nil
	}
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		t.Errorf("service %s: plato %s %q: %v (extra %q)", service, sub, args, err, fs.Args())
		return nil, nil
	}
	if cf.config == "" || filepath.IsAbs(cf.config) {
		t.Errorf("service %s: --config %q; want a file of the repository, relative to %s", service, cf.config, imageWorkdir)
		return nil, nil
	}
	if !strings.HasPrefix(filepath.Clean(cf.config), "configs"+string(filepath.Separator)) {
		t.Errorf("service %s: --config %s is not under configs/, which the Dockerfile copies", service, cf.config)
	}
	cf.config = filepath.Join(platformtest.RepoRoot(), cf.config)
	if _, err := os.Stat(cf.config); err != nil {
		t.Errorf("service %s: %v", service, err)
		return nil, nil
	}
	if natsAddr != nil && *natsAddr != "" {
		host, port, err := net.SplitHostPort(*natsAddr)
		if err != nil {
			t.Errorf("service %s: --addr %q: %v", service, *natsAddr, err)
		}
		cf.set = append(cf.set, "nats.embedded.host="+host, "nats.embedded.port="+port)
	}
	var keys []string
	for _, s := range cf.set {
		k, _, _ := strings.Cut(s, "=")
		keys = append(keys, k)
	}
	cfg, err := cf.load(addrKey)
	if err != nil {
		t.Errorf("service %s: the configuration does not load: %v", service, err)
		return nil, keys
	}
	// Relative directories resolve from the image's working directory, which holds configs/.
	if d := cfg.Pipeline.Dir; d != "" && filepath.IsAbs(d) {
		t.Errorf("service %s: pipeline.dir %s is not in the image", service, d)
	}
	return &cfg, keys
}

// documentedConfigKeys are the keys in the tables of docs/configuration.md.
func documentedConfigKeys(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(platformtest.RepoRoot(), "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z0-9_.<>]+)` \\|").FindAllStringSubmatch(string(b), -1) {
		keys[m[1]] = true
	}
	return keys
}

// docKey is how docs/configuration.md names a key: an app's keys under apps.<app>.
func docKey(k string) string {
	if parts := strings.SplitN(k, ".", 3); len(parts) == 3 && parts[0] == "apps" {
		return "apps.<app>." + parts[2]
	}
	return k
}

// checkPipelinePlugins checks that every plugin the pipeline files of dir name is one the image
// has (bin/plugins/<name>, built from plugins/<name>) or a builtin.
func checkPipelinePlugins(t *testing.T, dir string, plugins map[string]bool) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Errorf("pipeline.dir %s has no pipeline files: %v", dir, err)
		return
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			Stages []struct {
				Plugin string `yaml:"plugin"`
			} `yaml:"stages"`
		}
		if err := yaml.Unmarshal(b, &p); err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		for _, s := range p.Stages {
			if name, ok := strings.CutPrefix(s.Plugin, "builtin:"); ok {
				if _, known := builtins()[name]; !known {
					t.Errorf("%s: builtin %q does not exist", file, name)
				}
				continue
			}
			if !plugins[s.Plugin] {
				t.Errorf("%s: plugin %q is not built into the image (no plugins/%s/main.go)", file, s.Plugin, s.Plugin)
			}
		}
	}
}
