/*
 * chat.h: chat templates: turn a list of {role, content} messages into the
 * prompt text a model was trained on.
 *
 * GGUF files carry their template as a Jinja program in
 * tokenizer.chat_template. We do not run Jinja: we recognise the common
 * families by their markers (as llama.cpp's llm_chat_detect_template does)
 * and render them in C:
 *   "<|im_start|>"                          -> ChatML (Qwen, Yi, many fine-tunes)
 *   "<|start_header_id|>"                   -> Llama 3
 *   "[INST]" (with or without "<<SYS>>")    -> Llama 2 / Mistral
 *   "<start_of_turn>"                       -> Gemma
 *   "<|user|>" with "<|end|>"               -> Phi-3
 * Fallback (no template, or none of the markers): ChatML when the
 * vocabulary has the token "<|im_start|>", else a plain transcript
 *   "System: ...\nUser: ...\nAssistant: ...\nAssistant:"
 * with "\nUser:" as an extra stop string.
 * The rendered text is tokenized with special tokens parsed (the markers
 * become their control tokens); BOS is added by the tokenizer, not here.
 */
#ifndef SERVER_CHAT_H
#define SERVER_CHAT_H

#include <stdbool.h>
#include <stddef.h>

enum chat_family {
	CHAT_PLAIN = 0,
	CHAT_CHATML,
	CHAT_LLAMA2,
	CHAT_LLAMA3,
	CHAT_GEMMA,
	CHAT_PHI3,
	CHAT_FAMILY_COUNT,
};

struct chat_msg {
	const char *role;    /* "system", "user", "assistant" (others rendered as given) */
	const char *content; /* NUL-terminated */
};

/* tmpl may be NULL (no template in the file). */
enum chat_family chat_detect(const char *tmpl, size_t len, bool vocab_has_im_start);
const char *chat_family_name(enum chat_family f);
/* Extra stop string the family needs beyond the model's EOG tokens, or NULL. */
const char *chat_stop(enum chat_family f);

/* Render msgs and the opening of the assistant's turn. Returns a malloc'd
 * NUL-terminated string (caller frees), NULL on ENOMEM. */
char *chat_render(enum chat_family f, const struct chat_msg *msgs, size_t n);

#endif
