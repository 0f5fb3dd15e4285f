package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/v2"
)

// LoadFile reads, validates and fills in the defaults of one pipeline file. Relative plugin paths
// resolve against pluginDir (relative to the working directory; "" is the working directory), and
// every plugin binary is checked to exist, be executable and match its sha256. A file that says
// `extends: <app ID>` is merged onto that app's file in the same directory (extends.go). On
// failure it returns every problem found, each an *Error, joined with errors.Join. The app ID of
// the result is the file's name without .yaml/.yml; LoadFile does not check it is a valid one.
func LoadFile(path, pluginDir string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, ioError(path, "cannot read the pipeline file", err)
	}
	self := appIDOf(path)
	f, err := parse(path, data, pluginDir, func(name string) (*File, error) {
		return loadBase(path, self, name, pluginDir)
	})
	if err != nil {
		return nil, err
	}
	f.AppID = self
	f.Source = path
	return f, nil
}

// parse validates data, the contents of the file named file. base loads the file an
// `extends: <name>` names.
func parse(file string, data []byte, pluginDir string, base func(name string) (*File, error)) (*File, error) {
	t := scan(file, data)
	if t.fatal {
		return nil, joinErrors(t.errs)
	}
	k := koanf.New(".")
	if err := k.Load(bytesProvider(data), yaml.Parser()); err != nil {
		t.syntax(err, data)
		return nil, joinErrors(t.errs)
	}
	var d fileDoc
	if err := k.UnmarshalWithConf("", &d, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		t.add(0, "", "cannot decode: "+err.Error(), true)
		return nil, joinErrors(t.errs)
	}
	c := &checker{t: t, pluginDir: pluginDir}
	if d.Extends != nil {
		name, ok := c.str("extends", d.Extends, true)
		switch {
		case !ok:
		case !ValidAppID(name):
			c.bad("extends", "%q is not an app ID: name the file to extend without .yaml, e.g. extends: default", name)
		default:
			b, err := base(name)
			var fe *Error
			switch {
			case err == nil:
				c.base = b
			case errors.As(err, &fe):
				// The extended file's own problems, each naming that file and its line.
				c.bad("extends", "%s cannot be extended: it has problems of its own (listed with its name)", name)
				return nil, errors.Join(joinErrors(append(t.errs, c.errs...)), err)
			default:
				c.bad("extends", "%v", err)
			}
		}
		if c.base == nil {
			return nil, joinErrors(append(t.errs, c.errs...))
		}
	}
	f := c.file(&d)
	if errs := append(t.errs, c.errs...); len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	return f, nil
}

// LoadDir loads every pipeline file in dir: <app_id>.yaml (or .yml) for that app, default.yaml
// for app IDs without a file of their own. Without default.yaml such apps get no stages. Files
// whose name starts with "." (editor temporaries) and files with other extensions are ignored;
// a file name that is not a valid app ID (see ValidAppID) is an error. It loads each file as
// LoadFile does and returns the problems of all of them joined, or the whole Set.
func LoadDir(dir, pluginDir string) (*Set, error) {
	files, errs := listDir(dir)
	if files == nil && len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	set := &Set{Dir: dir, Default: emptyDefault(), Apps: map[string]*File{}}
	var loadErrs []error
	for _, app := range sortedKeys(files) {
		f, err := LoadFile(files[app], pluginDir)
		if err != nil {
			loadErrs = append(loadErrs, err)
			continue
		}
		f.AppID = app
		if app == DefaultAppID {
			set.Default = f
		} else {
			set.Apps[app] = f
		}
	}
	if len(errs) > 0 || len(loadErrs) > 0 {
		all := make([]error, 0, len(errs)+len(loadErrs))
		for _, e := range errs {
			all = append(all, e)
		}
		return nil, errors.Join(dedupe(append(all, loadErrs...))...)
	}
	return set, nil
}

// LoadApp loads the pipeline file of one app ID from dir, as LoadDir would: what a watcher's
// callback needs to reload just that app. It returns nil and no error when the app has no file
// (it is served by the default pipeline), except for DefaultAppID, whose missing file is the
// empty pipeline.
func LoadApp(dir, appID, pluginDir string) (*File, error) {
	if !ValidAppID(appID) {
		return nil, &Error{File: dir, Msg: fmt.Sprintf("%q is not a valid app ID (1 to 128 of A-Z a-z 0-9 _ . -)", appID)}
	}
	path, err := findAppFile(dir, appID)
	if err != nil {
		return nil, err
	}
	if path == "" {
		if appID == DefaultAppID {
			return emptyDefault(), nil
		}
		return nil, nil
	}
	f, err := LoadFile(path, pluginDir)
	if err != nil {
		return nil, err
	}
	f.AppID = appID
	return f, nil
}

// listDir maps each app ID in dir to its file. files is nil when dir cannot be read.
func listDir(dir string) (files map[string]string, errs []*Error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, []*Error{ioError(dir, "cannot read the pipeline directory", err)}
	}
	files = map[string]string{}
	for _, e := range entries {
		name := e.Name()
		app, ok := pipelineFileName(name)
		if !ok {
			continue
		}
		path := filepath.Join(dir, name)
		if !ValidAppID(app) {
			errs = append(errs, &Error{File: path, Msg: fmt.Sprintf("%q is not a valid app ID (1 to 128 of A-Z a-z 0-9 _ . -): rename the file", app)})
			continue
		}
		if fi, err := os.Stat(path); err != nil {
			errs = append(errs, ioError(path, "cannot read the pipeline file", err))
			continue
		} else if !fi.Mode().IsRegular() {
			errs = append(errs, &Error{File: path, Msg: "is not a regular file"})
			continue
		}
		if prev, dup := files[app]; dup {
			errs = append(errs, &Error{File: path, Msg: fmt.Sprintf("app %s also has %s; keep one of them", app, filepath.Base(prev))})
			continue
		}
		files[app] = path
	}
	return files, errs
}

// pipelineFileName returns the app ID a file name stands for, and whether it is a pipeline file
// at all: not hidden, ending in .yaml or .yml.
func pipelineFileName(name string) (string, bool) {
	if strings.HasPrefix(name, ".") {
		return "", false
	}
	for _, ext := range []string{".yaml", ".yml"} {
		if app, ok := strings.CutSuffix(name, ext); ok {
			return app, true
		}
	}
	return "", false
}

func appIDOf(path string) string {
	base := filepath.Base(path)
	if app, ok := pipelineFileName(base); ok {
		return app
	}
	return strings.TrimSuffix(base, filepath.Ext(base))
}

func ioError(path, what string, err error) *Error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &Error{File: path, Msg: what + ": " + err.Error(), cause: err}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// bytesProvider is a koanf.Provider of bytes already read, so that the node walk and koanf see
// the same version of a file that is being edited.
type bytesProvider []byte

func (b bytesProvider) ReadBytes() ([]byte, error) { return b, nil }

func (b bytesProvider) Read() (map[string]any, error) {
	return nil, errors.New("pipeline config: bytesProvider needs a parser")
}

// dedupe drops repeated problems: a file extended by several others is reported once, not once
// per file extending it.
func dedupe(errs []error) []error {
	seen := map[string]bool{}
	var out []error
	for _, e := range errs {
		for _, leaf := range leaves(e) {
			if k := leaf.Error(); !seen[k] {
				seen[k] = true
				out = append(out, leaf)
			}
		}
	}
	return out
}
