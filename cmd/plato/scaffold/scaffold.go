// Package scaffold writes a new pipeline-stage project for a business team: `plato plugin new NAME`.
//
// The project is a Go module of its own that depends only on Plato's SDK module: main.go (the
// plugin's whole main, stage.Serve), NAME.go (a small working stage with comments that walk the
// author through Info, Init, the handlers and the Host), NAME_test.go (tests with the SDK's
// stagetest harness), README.md and go.mod. It builds and its tests pass as generated.
package scaffold

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/template"
)

// DefaultSDKModule is the module path of Plato's SDK. A stage project requires its stage module,
// DefaultSDKModule + "/stage", which pulls in go-plugin and gRPC and nothing of Plato's servers.
const DefaultSDKModule = "github.com/platoim/plato/sdk"

// DefaultSDKVersion is the SDK version go.mod requires when Options.SDKVersion is empty and the
// SDK is replaced by a local checkout (the version is then only a placeholder).
const DefaultSDKVersion = "v0.0.0"

// DefaultGoVersion is the go directive of the generated go.mod: the SDK's own.
const DefaultGoVersion = "1.26"

// Options tune Generate. The zero value is ready to use.
type Options struct {
	// Module is the generated project's module path. Default "example.com/<name>".
	Module string
	// SDKReplace, when set, is the directory of a local checkout of the SDK (the sdk/ folder of
	// Plato's repository); go.mod then replaces the SDK's modules with it (made absolute). Plato's own tests and `make up` use it. Default:
	// none, the SDK comes from the module proxy.
	SDKReplace string
	// SDKVersion is the SDK version go.mod requires. Default: DefaultSDKVersion with SDKReplace;
	// without it, no require line is written and the README's `go mod tidy` picks the latest.
	SDKVersion string
	// GoVersion is the go directive of go.mod. Default DefaultGoVersion.
	GoVersion string
}

// validName is what NAME may be: it becomes a directory, a binary, a file name and a stage name.
var validName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)

// ValidateName reports whether name can name a plugin, and why not.
func ValidateName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("invalid plugin name %q: use a lower-case letter followed by up to 63 lower-case letters, digits, '_' or '-'", name)
	}
	return nil
}

//go:embed templates/*.tmpl
var templates embed.FS

// data is what the templates see.
type data struct {
	Name       string // the plugin's name, e.g. "max-size"
	Type       string // the stage's Go type, e.g. "MaxSize"
	Module     string
	SDK        string // the SDK module path
	SDKVersion string // empty: no require line
	SDKReplace string // absolute, quoted when needed; empty: no replace line
	// StageReplace is SDKReplace's stage module.
	StageReplace string
	GoVersion    string
}

// files maps each template to the file it writes; NAME is replaced by the plugin's name.
var files = []struct{ tmpl, out string }{
	{"go.mod.tmpl", "go.mod"},
	{"main.go.tmpl", "main.go"},
	{"stage.go.tmpl", "NAME.go"},
	{"stage_test.go.tmpl", "NAME_test.go"},
	{"README.md.tmpl", "README.md"},
}

// Generate writes a new plugin project named name into dir/name. sdkModulePath is the SDK's
// module path (DefaultSDKModule when empty). It refuses a bad name and an existing dir/name, and
// leaves nothing behind when it fails.
func Generate(dir, name, sdkModulePath string, opts Options) (err error) {
	if err := ValidateName(name); err != nil {
		return err
	}
	d := data{
		Name:       name,
		Type:       typeName(name),
		Module:     opts.Module,
		SDK:        sdkModulePath,
		SDKVersion: opts.SDKVersion,
		GoVersion:  opts.GoVersion,
	}
	if d.SDK == "" {
		d.SDK = DefaultSDKModule
	}
	if d.Module == "" {
		d.Module = "example.com/" + name
	}
	if d.GoVersion == "" {
		d.GoVersion = DefaultGoVersion
	}
	if opts.SDKReplace != "" {
		abs, err := filepath.Abs(opts.SDKReplace)
		if err != nil {
			return fmt.Errorf("resolving SDK path %s: %w", opts.SDKReplace, err)
		}
		for _, m := range []string{abs, filepath.Join(abs, "stage")} {
			if _, err := os.Stat(filepath.Join(m, "go.mod")); err != nil {
				return fmt.Errorf("SDK path %s: no go.mod there: %w", m, err)
			}
		}
		d.SDKReplace, d.StageReplace = modPath(abs), modPath(filepath.Join(abs, "stage"))
		if d.SDKVersion == "" {
			d.SDKVersion = DefaultSDKVersion
		}
	}

	rendered := make(map[string][]byte, len(files))
	for _, f := range files {
		b, err := render(f.tmpl, d)
		if err != nil {
			return err
		}
		rendered[strings.ReplaceAll(f.out, "NAME", name)] = b
	}

	target := filepath.Join(dir, name)
	if _, err := os.Lstat(target); err == nil {
		return fmt.Errorf("creating plugin %s: %s already exists; not overwriting it", name, target)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("creating plugin %s: %w", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating plugin %s: %w", name, err)
	}
	// Mkdir (not MkdirAll) fails if someone created target since the check: never overwrite.
	if err := os.Mkdir(target, 0o755); err != nil {
		return fmt.Errorf("creating plugin %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(target)
		}
	}()
	for out, b := range rendered {
		if err := os.WriteFile(filepath.Join(target, out), b, 0o644); err != nil {
			return fmt.Errorf("creating plugin %s: %w", name, err)
		}
	}
	return nil
}

// modPath writes a directory as go.mod needs it: quoted when it has spaces or quotes.
func modPath(dir string) string {
	if strings.ContainsAny(dir, " \t\"'`") {
		return strconv.Quote(dir)
	}
	return dir
}

func render(name string, d data) ([]byte, error) {
	t, err := template.New(name).Option("missingkey=error").ParseFS(templates, "templates/"+name)
	if err != nil {
		return nil, fmt.Errorf("parsing template %s: %w", name, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return nil, fmt.Errorf("rendering template %s: %w", name, err)
	}
	return buf.Bytes(), nil
}

// typeName turns a plugin name into an exported Go identifier: "max-size" -> "MaxSize".
func typeName(name string) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(name, func(r rune) bool { return r == '-' || r == '_' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}
