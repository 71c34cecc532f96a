// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

// Command modproxy packs Go modules from this repository into a file-based module proxy (the
// GOPROXY protocol's <module>/@v/list, <version>.info, .mod and .zip files), so that ocb and
// `go get` fetch them as they would fetch a tagged release, with
// GOPROXY=file://<dir>,<the usual proxy> and GONOSUMDB=<our module path>.
//
//	modproxy -out build/goproxy -version v0.1.0 go-bindings/certstore go-bindings/certstoreextension
//
// The zips are made by golang.org/x/mod/zip, the go command's own rules (which files a module
// holds, size limits, path checks). Packing a version again replaces it: the go command's
// module cache keeps the first copy it downloaded, so remove that copy (examples/collector/
// build.sh does) before building against a re-packed version.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	modzip "golang.org/x/mod/zip"
)

func main() {
	out := flag.String("out", "", "proxy directory to write (GOPROXY=file://<out>)")
	version := flag.String("version", "", "version to give every module, e.g. v0.1.0")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: modproxy -out DIR -version vX.Y.Z MODULE_DIR...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := pack(*out, *version, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "modproxy:", err)
		os.Exit(1)
	}
}

type mod struct {
	dir  string
	file *modfile.File
}

func pack(out, version string, dirs []string) error {
	if !semver.IsValid(version) || semver.Canonical(version) != version {
		return fmt.Errorf("-version %q is not a canonical semantic version such as v0.1.0", version)
	}
	mods := make([]mod, 0, len(dirs))
	packed := map[string]bool{}
	for _, dir := range dirs {
		gomod := filepath.Join(dir, "go.mod")
		data, err := os.ReadFile(gomod)
		if err != nil {
			return err
		}
		f, err := modfile.ParseLax(gomod, data, nil)
		if err != nil {
			return err
		}
		if f.Module == nil {
			return fmt.Errorf("%s: no module line", gomod)
		}
		mods = append(mods, mod{dir: dir, file: f})
		packed[f.Module.Mod.Path] = true
	}
	// A module that requires another one packed here must require this version: a consumer
	// resolves that requirement through the proxy, where no other version exists.
	for _, m := range mods {
		for _, r := range m.file.Require {
			if packed[r.Mod.Path] && r.Mod.Version != version {
				return fmt.Errorf("%s/go.mod requires %s %s, but this proxy holds %s: change the require line",
					m.dir, r.Mod.Path, r.Mod.Version, version)
			}
		}
	}
	for _, m := range mods {
		if err := packOne(out, version, m); err != nil {
			return fmt.Errorf("%s: %w", m.dir, err)
		}
	}
	return nil
}

func packOne(out, version string, m mod) error {
	mv := module.Version{Path: m.file.Module.Mod.Path, Version: version}
	if err := module.Check(mv.Path, mv.Version); err != nil {
		return err
	}
	escaped, err := module.EscapePath(mv.Path)
	if err != nil {
		return err
	}
	vdir := filepath.Join(out, filepath.FromSlash(escaped), "@v")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return err
	}
	base := filepath.Join(vdir, version)

	zf, err := os.Create(base + ".zip")
	if err != nil {
		return err
	}
	if err := modzip.CreateFromDir(zf, mv, m.dir); err != nil {
		zf.Close()
		return err
	}
	if err := zf.Close(); err != nil {
		return err
	}
	gomod, err := os.ReadFile(filepath.Join(m.dir, "go.mod"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".mod", gomod, 0o644); err != nil {
		return err
	}
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{version, time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".info", info, 0o644); err != nil {
		return err
	}
	return addToList(filepath.Join(vdir, "list"), version)
}

func addToList(path, version string) error {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	versions := strings.Fields(string(data))
	if !slices.Contains(versions, version) {
		versions = append(versions, version)
	}
	semver.Sort(versions)
	return os.WriteFile(path, []byte(strings.Join(versions, "\n")+"\n"), 0o644)
}
