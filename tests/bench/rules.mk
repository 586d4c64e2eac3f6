# Build rules of the writer benchmark, included at the end of the Makefile. Not part of `all`:
# tests/bench/writer_bench.sh builds what it needs with `make build/bench/writer_bench`.
build/bench/writer_bench: tests/bench/writer_bench.c tests/bench/maildir.h $(STAGE_LIBS) build/libmailpipe.a
	@mkdir -p build/bench
	@echo LD $@
	@$(CC) $(CFLAGS) -Iparser -Iwriter $(LDFLAGS) -o $@ $< $(STAGE_LIBS) build/libmailpipe.a $(MALLOC_LIBS) $(LDLIBS)
