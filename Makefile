# corral's build. Kconfig decides what is built; objects, programs, BPF skeletons and test
# binaries go under $(O) (build/, or build-asan/ for sanitized builds), never beside the sources.
#
#   make [all]          libcorral.a, corral, corrald, corral-init (static), corral-fake-api
#   make asan [check]   the same with ASan+UBSan, in build-asan/
#   make check          format check, unit tests, host integration tests, VM kernel tests
#   make unit | itest | vmtest    one of those runners
#   make defconfig | menuconfig | olddefconfig | savedefconfig
#   make format | check-format | install | clean | distclean | deps | sdk

SHELL := /bin/bash
.DEFAULT_GOAL := all
.DELETE_ON_ERROR:

# Goals that must not create or read .config.
no-config-goals := defconfig menuconfig nconfig olddefconfig savedefconfig clean distclean deps \
	format check-format help
ifneq ($(MAKECMDGOALS),)
ifeq ($(filter-out $(no-config-goals),$(MAKECMDGOALS)),)
no-config := 1
endif
endif

KCONFIG_CONF ?= kconfig-conf
KCONFIG_MCONF ?= kconfig-mconf
KCONFIG_NCONF ?= kconfig-nconf
CLANG ?= clang
BPFTOOL ?= bpftool
CLANG_FORMAT ?= clang-format
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
PREFIX ?= /usr/local

ifndef no-config
include include/config/auto.conf
endif

ifneq ($(filter asan,$(MAKECMDGOALS)),)
SANITIZE := 1
endif
ifeq ($(CONFIG_CORRAL_SANITIZERS),y)
SANITIZE := 1
endif
ifeq ($(SANITIZE),1)
O ?= build-asan
else
O ?= build
endif

ifeq ($(V),1)
Q :=
msg := @true
else
Q := @
msg := @printf '  %-8s %s\n'
endif

WARN := -Wall -Wextra -Werror -Wmissing-prototypes -Wstrict-prototypes -Wshadow=local \
	-Wformat=2 -Wvla -Werror=implicit-function-declaration
CPPFLAGS := -D_GNU_SOURCE -Iinclude -I. -I$(O) -include include/generated/autoconf.h
CFLAGS := -std=gnu11 -g $(WARN) -fno-common -fstack-protector-strong -MMD -MP
LDFLAGS :=
# corral-init runs inside arbitrary root file systems: static, libc and jansson only. ASan
# cannot link statically, so a sanitized build gives it UBSan alone.
INIT_CFLAGS := $(CFLAGS)
INIT_LDFLAGS := -static
INIT_LIBS := -ljansson

ifeq ($(SANITIZE),1)
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
CFLAGS += -O1 $(SAN)
LDFLAGS += $(SAN)
INIT_CFLAGS += -O1 -fsanitize=undefined -fno-sanitize-recover=all
INIT_LDFLAGS += -fsanitize=undefined
else
CFLAGS += -O2
CPPFLAGS += -D_FORTIFY_SOURCE=2
INIT_CFLAGS += -O2
endif

LIBS := -ljansson -lsqlite3 -lcurl -lm -lpthread
ifeq ($(CONFIG_CORRAL_BPF),y)
LIBS += -lbpf -lelf -lz
endif
ifeq ($(CONFIG_CORRAL_SECCOMP),y)
LIBS += -lseccomp
endif
ifeq ($(CONFIG_CORRAL_IO_URING),y)
LIBS += -luring
endif
ifeq ($(CONFIG_CORRAL_LIBNL),y)
CPPFLAGS += $(shell pkg-config --cflags libnl-route-3.0)
LIBS += -lnl-route-3 -lnl-3
endif

# --- sources ---------------------------------------------------------------------------------

LIB_SRCS := util/error.c util/buf.c util/heap.c util/fileio.c util/strutil.c util/crc32c.c util/id.c util/json.c \
	log/format.c log/catalog.c log/log.c cgroups/cgroup.c bpf/opencount.c bpf/probe.c \
	runtime/doctor.c runtime/seccomp.c runtime/sandbox.c runtime/net.c runtime/initclient.c \
	runtime/tool.c runtime/hands.c runtime/model_stream.c runtime/model.c runtime/orchestrator.c \
	runtime/brainlink.c runtime/harness.c init/frame.c
CLI_SRCS := cli/main.c cli/doctor.c cli/bench.c cli/sandbox.c cli/client.c cli/resources.c \
	cli/run.c cli/worker.c bench/common.c bench/log.c bench/sandbox.c bench/model.c \
	bench/ttft.c
CORRALD_SRCS := daemon/corrald.c daemon/api.c daemon/api_store.c daemon/workers.c
FAKEAPI_SRCS := fakeapi/main.c fakeapi/http.c fakeapi/api.c
# init/frame.c and util/error.c are in libcorral too: the protocol's framing exists once.
INIT_SRCS := init/corral-init.c init/serve.c init/proc.c init/shell.c init/files.c init/search.c \
	init/text.c init/frame.c util/error.c
UNIT_SRCS := $(sort $(wildcard tests/test_*.c)) tests/helpers.c

BPF_PROGS :=
ifeq ($(CONFIG_CORRAL_BPF_LSM),y)
BPF_PROGS += opencount
endif
SKELS := $(BPF_PROGS:%=$(O)/bpf/%.skel.h)

obj = $(patsubst %.c,$(O)/%.o,$(1))
LIB_OBJS := $(call obj,$(LIB_SRCS))
CLI_OBJS := $(call obj,$(CLI_SRCS))
CORRALD_OBJS := $(call obj,$(CORRALD_SRCS))
FAKEAPI_OBJS := $(call obj,$(FAKEAPI_SRCS))
INIT_OBJS := $(patsubst %.c,$(O)/%.init.o,$(INIT_SRCS))
UNIT_OBJS := $(call obj,$(UNIT_SRCS))

PROGRAMS := $(O)/corral $(O)/corrald $(O)/corral-init $(O)/corral-fake-api
TEST_BINS := $(O)/tests/unit $(O)/tests/escape-probe $(O)/tests/model-stream \
	$(O)/tests/model-call $(O)/tests/orch-wake

# --- configuration ---------------------------------------------------------------------------

.config:
	@echo "  CONFIG   .config from configs/defconfig"
	$(Q)$(KCONFIG_CONF) --defconfig=configs/defconfig Kconfig >/dev/null

# olddefconfig first gives new symbols their defaults, so syncing never prompts.
include/config/auto.conf: .config Kconfig
	$(msg) SYNC include/generated/autoconf.h
	$(Q)mkdir -p include/config include/generated
	$(Q)$(KCONFIG_CONF) --olddefconfig Kconfig >/dev/null
	$(Q)$(KCONFIG_CONF) --silentoldconfig Kconfig
include/generated/autoconf.h: include/config/auto.conf ;

.PHONY: defconfig menuconfig nconfig olddefconfig savedefconfig
defconfig:
	$(KCONFIG_CONF) --defconfig=configs/defconfig Kconfig
menuconfig:
	$(KCONFIG_MCONF) Kconfig
nconfig:
	$(KCONFIG_NCONF) Kconfig
olddefconfig:
	$(KCONFIG_CONF) --olddefconfig Kconfig
savedefconfig:
	$(KCONFIG_CONF) --savedefconfig=defconfig Kconfig
	@echo "wrote ./defconfig (options that differ from their defaults); compare with configs/defconfig"

# --- build -----------------------------------------------------------------------------------

.PHONY: all asan
all: $(PROGRAMS) $(O)/libcorral.a
asan: all

$(O)/%.o: %.c include/generated/autoconf.h
	$(msg) CC $@
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(O)/%.init.o: %.c include/generated/autoconf.h
	$(msg) CC $@
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CPPFLAGS) $(INIT_CFLAGS) -c $< -o $@

# A list file per linked target changes when a source is added or removed, so the target is
# rebuilt then too (an object that is merely gone would not make it out of date).
$(O)/%.list: FORCE
	$(Q)mkdir -p $(@D)
	$(Q)printf '%s\n' $(LIST_$*) | cmp -s - $@ || printf '%s\n' $(LIST_$*) > $@
LIST_libcorral := $(LIB_OBJS)
LIST_tests/unit := $(UNIT_OBJS)
LIST_corral-init := $(INIT_OBJS)
.PHONY: FORCE
FORCE:

$(O)/libcorral.a: $(LIB_OBJS) $(O)/libcorral.list
	$(msg) AR $@
	$(Q)rm -f $@ && $(AR) rcs $@ $(LIB_OBJS)

$(O)/corral: $(CLI_OBJS) $(O)/libcorral.a
	$(msg) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(O)/corrald: $(CORRALD_OBJS) $(O)/libcorral.a
	$(msg) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lmicrohttpd

$(O)/corral-fake-api: $(FAKEAPI_OBJS)
	$(msg) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ -ljansson -lm -lpthread

$(O)/corral-init: $(INIT_OBJS) $(O)/corral-init.list
	$(msg) LD $@
	$(Q)$(CC) $(INIT_LDFLAGS) -o $@ $(INIT_OBJS) $(INIT_LIBS)

# --- BPF: vmlinux.h from the build host's BTF, object, skeleton -----------------------------

$(O)/bpf/vmlinux.h:
	$(msg) BTF $@
	$(Q)mkdir -p $(@D)
	$(Q)test -r $(VMLINUX_BTF) || { echo "$(VMLINUX_BTF) not readable: the build host's kernel needs BTF (CONFIG_DEBUG_INFO_BTF), or set VMLINUX_BTF=" >&2; exit 1; }
	$(Q)$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@.tmp && mv $@.tmp $@

$(O)/bpf/%.bpf.o: bpf/%.bpf.c $(O)/bpf/vmlinux.h
	$(msg) BPF $@
	$(Q)$(CLANG) -target bpf -g -O2 -D__TARGET_ARCH_x86 -Wall -Werror -I$(O)/bpf -Ibpf \
		-MMD -MP -MF $@.d -c $< -o $@.tmp.o
	$(Q)$(BPFTOOL) gen object $@ $@.tmp.o && rm -f $@.tmp.o

$(O)/bpf/%.skel.h: $(O)/bpf/%.bpf.o
	$(msg) SKEL $@
	$(Q)$(BPFTOOL) gen skeleton $< name $*_bpf > $@.tmp && mv $@.tmp $@

$(O)/bpf/opencount.o: | $(SKELS)

# --- tests -----------------------------------------------------------------------------------

$(O)/tests/unit: $(UNIT_OBJS) $(O)/libcorral.a $(O)/tests/unit.list
	$(msg) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $(UNIT_OBJS) $(O)/libcorral.a -lcriterion $(LIBS)

# runtime/model's stream parser over standard input, for the SDK comparison tests.
$(O)/tests/model-stream: $(O)/tests/model-stream.o $(O)/libcorral.a
	$(msg) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# runtime/model's client from the command line, for the client's integration tests.
$(O)/tests/model-call: $(O)/tests/model-call.o $(O)/libcorral.a
	$(msg) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# wake(session) in-process, for the orchestrator's integration tests.
$(O)/tests/orch-wake: $(O)/tests/orch-wake.o $(O)/libcorral.a
	$(msg) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# What a hostile agent tries from inside a sandbox; static, like corral-init, to run in any root.
$(O)/tests/escape-probe: tests/escape-probe.c
	$(msg) LD $@
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(INIT_CFLAGS) $(INIT_LDFLAGS) -o $@ $<

export CORRAL_BUILD = $(abspath $(O))
export CORRAL_SANITIZE = $(SANITIZE)

.PHONY: check unit itest vmtest
# Runs every runner even after a failure, so each summary line is printed; fails if any failed.
check: all $(TEST_BINS)
	@rc=0; \
	scripts/check-format.sh || rc=1; \
	tests/run-unit.sh || rc=1; \
	tests/run-integration.sh || rc=1; \
	scripts/vmtest.sh || rc=1; \
	if [ $$rc = 0 ]; then echo "make check: all runners passed"; else echo "make check: FAILED (see above)"; fi; \
	exit $$rc
unit: all $(TEST_BINS)
	tests/run-unit.sh
itest: all $(TEST_BINS)
	tests/run-integration.sh
vmtest: all $(TEST_BINS)
	scripts/vmtest.sh

# --- housekeeping ----------------------------------------------------------------------------

FORMAT_DIRS := util cgroups bpf bench runtime log vault cli daemon init fakeapi include/corral tests
.PHONY: format check-format install clean distclean deps sdk help
format:
	find $(FORMAT_DIRS) -name '*.[ch]' -print0 | xargs -0r $(CLANG_FORMAT) -i
check-format:
	scripts/check-format.sh

install: all
	install -D -m 0755 $(O)/corral $(DESTDIR)$(PREFIX)/bin/corral
	install -D -m 0755 $(O)/corrald $(DESTDIR)$(PREFIX)/sbin/corrald
	install -D -m 0755 $(O)/corral-init $(DESTDIR)$(PREFIX)/libexec/corral/corral-init
	install -D -m 0755 $(O)/corral-fake-api $(DESTDIR)$(PREFIX)/bin/corral-fake-api

clean:
	rm -rf build build-asan
distclean: clean
	rm -rf .cache include/config include/generated .config .config.old ..config.tmp
deps:
	scripts/deps.sh
# The pinned official TypeScript SDK in $(O)/sdk, the baseline of "corral bench model".
sdk:
	scripts/sdk.sh $(O)/sdk

help:
	@sed -n '/^#   make/p' Makefile | sed 's/^# *//'

ifndef no-config
-include $(shell find $(O) -name '*.d' 2>/dev/null)
endif
