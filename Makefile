# mailpipe build: `make` builds bin/, `make check` installs what is missing and runs every test,
# `make demo` runs the whole pipeline on the bundled mailbox, `make bench` prints figures.
PREFIX ?= /usr/local
CC ?= cc
PKGS := hiredis libcurl libpq gmime-3.0 libuv jansson libxml-2.0
SANITIZER ?=
OPT ?= -O2 -g
WERROR ?= -Werror

PKG_CONFIG ?= pkg-config

# Without the -dev packages the compiler would stop at "libpq-fe.h: No such file or directory":
# say instead, in one line, what is missing and what to run. Goals that compile nothing (or
# install the packages first) pass.
ifneq ($(filter-out deps check demo demo-stop bench clean lint,$(or $(MAKECMDGOALS),all)),)
PKG_MISSING := $(strip $(shell for p in $(PKGS); do $(PKG_CONFIG) --exists $$p 2>/dev/null || echo $$p; done))
ifneq ($(PKG_MISSING),)
$(error missing build dependencies ($(PKG_CONFIG) finds no $(PKG_MISSING)): run `make deps` (Debian 12) or install their -dev packages)
endif
endif

PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
override CFLAGS += -std=c11 -D_GNU_SOURCE $(OPT) -Wall -Wextra -Wno-format-truncation $(WERROR) -Icommon -Itests/unit \
	$(PKG_CFLAGS) $(if $(SANITIZER),-fsanitize=$(SANITIZER) -fno-omit-frame-pointer)
override LDFLAGS += $(if $(SANITIZER),-fsanitize=$(SANITIZER))
LDLIBS := $(PKG_LIBS) -lcrypto -lm
# The stages allocate per message (GMime objects, GLib strings, JSON): with jemalloc, the
# allocator Redis ships with, the parser runs about 11% faster than with glibc's malloc
# (make bench). Sanitizer builds keep their own allocator, and unit tests glibc's, so that
# ASan and valgrind see every allocation.
MALLOC_LIBS := $(if $(SANITIZER),,$(shell $(PKG_CONFIG) --libs jemalloc 2>/dev/null))

STAGES := scheduler fetcher parser writer cli
COMMON_OBJ := $(patsubst %.c,build/%.o,$(wildcard common/*.c)) build/migrations.o
MIGRATIONS := $(sort $(wildcard writer/migrations/*.sql))
stage_obj = $(patsubst %.c,build/%.o,$(filter-out $(1)/main.c,$(wildcard $(1)/*.c)))
STAGE_LIBS := $(foreach s,$(STAGES),build/lib$(s).a)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,build/tests/%,$(UNIT_SRC))
BINS := bin/mailpipe bin/mailpipe-scheduler bin/mailpipe-fetcher bin/mailpipe-parser bin/mailpipe-writer

all: $(BINS)

build/%.o: %.c $(wildcard common/*.h) $(wildcard */*.h)
	@mkdir -p $(dir $@)
	@echo CC $<
	@$(CC) $(CFLAGS) -c -o $@ $<

build/migrations.c: $(MIGRATIONS) common/embed-migrations.sh
	@mkdir -p build
	./common/embed-migrations.sh $(MIGRATIONS) > $@

build/migrations.o: build/migrations.c
	@echo CC $<
	@$(CC) $(CFLAGS) -c -o $@ $<

build/libmailpipe.a: $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

define stage_lib
build/lib$(1).a: $(call stage_obj,$(1)) | build/libmailpipe.a
	@mkdir -p build
	@rm -f $$@
	ar rcs $$@ $$^
endef
$(foreach s,$(STAGES),$(eval $(call stage_lib,$(s))))

bin/mailpipe: build/cli/main.o build/libcli.a build/libmailpipe.a
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $^ $(MALLOC_LIBS) $(LDLIBS)

bin/mailpipe-%: build/%/main.o build/lib%.a build/libmailpipe.a
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $^ $(MALLOC_LIBS) $(LDLIBS)

build/tests/%: tests/unit/%.c $(STAGE_LIBS) build/libmailpipe.a tests/unit/test.h
	@mkdir -p build/tests
	@echo LD $@
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(STAGE_LIBS) build/libmailpipe.a $(LDLIBS)

FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(patsubst tests/fuzz/%.c,build/tests/replay_%,$(FUZZ_SRC))

# gcc builds replay the fuzz corpora through a plain main() (tests/fuzz/replay.c).
build/tests/replay_%: tests/fuzz/%.c tests/fuzz/replay.c $(STAGE_LIBS) build/libmailpipe.a
	@mkdir -p build/tests
	@echo LD $@
	@$(CC) $(CFLAGS) -Iparser $(LDFLAGS) -o $@ $< tests/fuzz/replay.c $(STAGE_LIBS) build/libmailpipe.a $(LDLIBS)

unit: $(UNIT_BIN) $(FUZZ_REPLAY)

# libFuzzer builds (clang): `make fuzz FUZZ_SECONDS=1800` runs each target that long, in turn,
# growing build/fuzz/corpus_<target> from the seeds in tests/fuzz/corpus/<target>.
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 -Icommon -Iparser $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined
FUZZ_LIBSRC = common/imap_parser.c common/mutf7.c common/uidset.c \
	$(filter-out parser/main.c parser/consume.c,$(wildcard parser/*.c))
FUZZ_TARGETS = $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRC))
fuzz:
	@mkdir -p build/fuzz
	for t in $(FUZZ_TARGETS); do \
		clang $(FUZZ_CFLAGS) -o build/fuzz/fuzz_$$t tests/fuzz/fuzz_$$t.c $(FUZZ_LIBSRC) $(PKG_LIBS) -lcrypto || exit 1; \
		mkdir -p build/fuzz/corpus_$$t; \
		build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 build/fuzz/corpus_$$t tests/fuzz/corpus/$$t || exit 1; \
	done

deps:
	./deploy/install-deps.sh

check: deps
	$(MAKE) all unit
	./tests/run.sh

demo: deps
	$(MAKE) all
	./deploy/demo.sh

demo-stop:
	-@[ -f .stack/mailpipe-run.pid ] && kill `cat .stack/mailpipe-run.pid` 2>/dev/null; rm -f .stack/mailpipe-run.pid
	./deploy/local/stack.sh stop

build/bench/parser_bench: tests/bench/parser_bench.c tests/bench/maildir.h $(STAGE_LIBS) build/libmailpipe.a
	@mkdir -p build/bench
	@echo LD $@
	@$(CC) $(CFLAGS) -Iparser $(LDFLAGS) -o $@ $< $(STAGE_LIBS) build/libmailpipe.a $(MALLOC_LIBS) $(LDLIBS)

bench: deps
	$(MAKE) all build/bench/parser_bench
	./tests/bench/run.sh

# Faults for SOAK_SECONDS (default 600) over MP_DEMO_COUNT messages (default 5000); not in check.
soak: all
	./tests/soak/soak.sh

lint:
	@! grep -nE '\b(sprintf|strcpy|strcat|atoi|gets)\s*\(' */*.c */*.h || \
		{ echo "lint: banned call above"; exit 1; }

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/mailpipe/migrations
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 writer/migrations/*.sql $(DESTDIR)$(PREFIX)/share/mailpipe/migrations/

clean:
	rm -rf build bin

.PHONY: fuzz all unit deps check demo demo-stop bench soak lint install clean
.SECONDARY:

# Extra build rules owned by the integration tests (drivers linked against the stages).
-include tests/integration/rules.mk
-include tests/bench/rules.mk
