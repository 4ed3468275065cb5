# podns: every target is a thin wrapper over a strict bash script in hack/.
SHELL := /bin/bash
PREFIX_BIN ?= /opt/cni/bin
CONF_DIR ?= /etc/cni/net.d

.PHONY: all build test install demo bench e2e chaos fuzz multinode verify clean

all: build

build:
	hack/build.sh

test: build
	hack/test.sh

install: build
	PREFIX_BIN=$(PREFIX_BIN) CONF_DIR=$(CONF_DIR) hack/install.sh

demo: install
	hack/demo.sh

bench: build
	hack/bench.sh

e2e: build
	hack/e2e-containerd.sh

chaos: build
	hack/chaos.sh

fuzz:
	hack/fuzz.sh

multinode: build
	hack/multinode.sh

verify:
	hack/verify.sh

clean:
	rm -rf bin
