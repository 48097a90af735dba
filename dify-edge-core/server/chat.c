/*
 * chat.c: chat template detection and rendering (see chat.h).
 *
 * Rendering follows llama.cpp's llm_chat_apply_template for each family
 * (the reference most GGUF users compare against): Llama 3 trims message
 * contents; Llama 2 folds the system message into the first [INST] inside
 * <<SYS>> markers and closes assistant turns with "</s>"; Gemma names the
 * assistant "model" and prepends the system message to the first user turn.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dify-edge-core/server/chat.h"

static const char *const family_names[CHAT_FAMILY_COUNT] = {
	[CHAT_PLAIN] = "plain",
	[CHAT_CHATML] = "chatml",
	[CHAT_LLAMA2] = "llama2",
	[CHAT_LLAMA3] = "llama3",
	[CHAT_GEMMA] = "gemma",
	[CHAT_PHI3] = "phi3",
};

const char *chat_family_name(enum chat_family f)
{
	return (f >= 0 && f < CHAT_FAMILY_COUNT) ? family_names[f] : "unknown";
}

static bool has(const char *t, size_t len, const char *needle)
{
	return t && memmem(t, len, needle, strlen(needle)) != NULL;
}

struct chat_marker {
	const char *needle;
	const char *also; /* a second marker that must also appear, or NULL */
	enum chat_family family;
};

/* First match wins; order matters (Phi-3 before anything with <|user|>). */
static const struct chat_marker markers[] = {
	{ .needle = "<|im_start|>", .family = CHAT_CHATML },
	{ .needle = "<|start_header_id|>", .family = CHAT_LLAMA3 },
	{ .needle = "<start_of_turn>", .family = CHAT_GEMMA },
	{ .needle = "<|user|>", .also = "<|end|>", .family = CHAT_PHI3 },
	{ .needle = "[INST]", .family = CHAT_LLAMA2 },
};

enum chat_family chat_detect(const char *tmpl, size_t len, bool vocab_has_im_start)
{
	for (size_t i = 0; tmpl && i < sizeof(markers) / sizeof(markers[0]); i++)
		if (has(tmpl, len, markers[i].needle) && (!markers[i].also || has(tmpl, len, markers[i].also)))
			return markers[i].family;
	return vocab_has_im_start ? CHAT_CHATML : CHAT_PLAIN;
}

const char *chat_stop(enum chat_family f)
{
	return f == CHAT_PLAIN ? "\nUser:" : NULL;
}

/* Copy of s without leading/trailing ASCII whitespace, written to f. */
static void put_trimmed(FILE *f, const char *s)
{
	const char *e = s + strlen(s);
	while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	fwrite(s, 1, (size_t)(e - s), f);
}

static void render_llama2(FILE *f, const struct chat_msg *m, size_t n)
{
	const char *sys = NULL;
	bool first_user = true;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(m[i].role, "system")) {
			sys = m[i].content;
		} else if (!strcmp(m[i].role, "assistant")) {
			fprintf(f, " ");
			put_trimmed(f, m[i].content);
			fprintf(f, " </s>");
		} else {
			fprintf(f, "%s[INST] ", first_user ? "" : "<s>");
			if (sys) {
				fprintf(f, "<<SYS>>\n%s\n<</SYS>>\n\n", sys);
				sys = NULL;
			}
			put_trimmed(f, m[i].content);
			fprintf(f, " [/INST]");
			first_user = false;
		}
	}
	if (sys) /* a lone system message */
		fprintf(f, "[INST] <<SYS>>\n%s\n<</SYS>>\n\n [/INST]", sys);
}

static void render_gemma(FILE *f, const struct chat_msg *m, size_t n)
{
	const char *sys = NULL;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(m[i].role, "system")) {
			sys = m[i].content;
			continue;
		}
		const char *role = !strcmp(m[i].role, "assistant") ? "model" : m[i].role;
		fprintf(f, "<start_of_turn>%s\n", role);
		if (sys) {
			put_trimmed(f, sys);
			fprintf(f, "\n\n");
			sys = NULL;
		}
		put_trimmed(f, m[i].content);
		fprintf(f, "<end_of_turn>\n");
	}
	fprintf(f, "<start_of_turn>model\n");
}

static const char *plain_role(const char *r)
{
	if (!strcmp(r, "system"))
		return "System";
	if (!strcmp(r, "assistant"))
		return "Assistant";
	if (!strcmp(r, "user"))
		return "User";
	return r;
}

char *chat_render(enum chat_family fam, const struct chat_msg *m, size_t n)
{
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);
	if (!f)
		return NULL;
	switch (fam) {
	case CHAT_CHATML:
		for (size_t i = 0; i < n; i++)
			fprintf(f, "<|im_start|>%s\n%s<|im_end|>\n", m[i].role, m[i].content);
		fprintf(f, "<|im_start|>assistant\n");
		break;
	case CHAT_LLAMA3:
		for (size_t i = 0; i < n; i++) {
			fprintf(f, "<|start_header_id|>%s<|end_header_id|>\n\n", m[i].role);
			put_trimmed(f, m[i].content);
			fprintf(f, "<|eot_id|>");
		}
		fprintf(f, "<|start_header_id|>assistant<|end_header_id|>\n\n");
		break;
	case CHAT_LLAMA2:
		render_llama2(f, m, n);
		break;
	case CHAT_GEMMA:
		render_gemma(f, m, n);
		break;
	case CHAT_PHI3:
		for (size_t i = 0; i < n; i++)
			fprintf(f, "<|%s|>\n%s<|end|>\n", m[i].role, m[i].content);
		fprintf(f, "<|assistant|>\n");
		break;
	case CHAT_PLAIN:
	default:
		for (size_t i = 0; i < n; i++)
			fprintf(f, "%s: %s\n", plain_role(m[i].role), m[i].content);
		fprintf(f, "Assistant:");
		break;
	}
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}
