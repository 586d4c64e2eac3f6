# Build rules of the integration tests' drivers, included at the end of the Makefile. Not part
# of `all` or `unit`: test_threading.sh builds what it needs with
# `make build/tests/thread_driver`.
build/tests/thread_driver: tests/integration/thread_driver.c $(STAGE_LIBS) build/libmailpipe.a
	@mkdir -p build/tests
	@echo LD $@
	@$(CC) $(CFLAGS) -Iparser -Iwriter $(LDFLAGS) -o $@ $< $(STAGE_LIBS) build/libmailpipe.a $(LDLIBS)

build/tests/pg_cache_driver: tests/integration/pg_cache_driver.c build/libmailpipe.a
	@mkdir -p build/tests
	@echo LD $@
	@$(CC) $(CFLAGS) -Icommon $(LDFLAGS) -o $@ $< build/libmailpipe.a $(LDLIBS)
