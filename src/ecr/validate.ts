/**
 * Reads an operation's input against the service model's constraints, collecting every problem
 * in AWS's words ("Value 'x' at 'repositoryName' failed to satisfy constraint: ...") into one
 * ValidationException. A member of the wrong JSON type is a SerializationException, as AWS has it.
 *
 *   const v = new InputReader(input);
 *   const name = v.string('repositoryName', { required: true, ...REPOSITORY_NAME });
 *   const max = v.integer('maxResults', { min: 1, max: 1000 });
 *   v.done(); // throws if anything was wrong
 */
import { EcrError, ecrErrors } from './errors.js';

/** One broken constraint: where, what was sent (as AWS shows it), and the constraint in AWS's words. */
export interface InputProblem {
  readonly path: string;
  readonly shown: string;
  readonly constraint: string;
}

/**
 * The ValidationException of an input, with its problems kept: an operation whose model does not
 * list ValidationException answers the first one as InvalidParameterException instead, as ECR does.
 */
export class InputValidationError extends EcrError {
  override name = 'InputValidationError';
  constructor(readonly problems: readonly InputProblem[]) {
    super('ValidationException', ecrErrors.validation(problems.map((p) => `Value ${p.shown} at '${p.path}' failed to satisfy constraint: ${p.constraint}`)).message);
  }

  /** The same, as InvalidParameterException words it. */
  asInvalidParameter(): EcrError {
    const first = this.problems[0]!;
    return ecrErrors.invalidParameter(`Invalid parameter at '${first.path}' failed to satisfy constraint: '${first.constraint}'`);
  }
}

export interface StringRule {
  required?: boolean;
  min?: number;
  max?: number;
  /** The model's pattern, matched against the whole value. */
  pattern?: RegExp;
  enum?: readonly string[];
}

export interface NumberRule {
  required?: boolean;
  min?: number;
  max?: number;
}

export interface ListRule {
  required?: boolean;
  min?: number;
  max?: number;
}

/** ECR's repository name (the model's RepositoryName). */
export const REPOSITORY_NAME: StringRule = {
  min: 2,
  max: 256,
  pattern: /^(?:[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/,
};
export const REGISTRY_ID: StringRule = { pattern: /^[0-9]{12}$/ };
export const IMAGE_TAG: StringRule = { min: 1, max: 300 };
export const MAX_RESULTS: NumberRule = { min: 1, max: 1000 };

export class InputReader {
  private readonly problems: InputProblem[] = [];

  constructor(private readonly input: Readonly<Record<string, unknown>>) {}

  /** A top-level member, or a nested one through `path` (for messages: 'filter.tagStatus'). */
  string(path: string, rule: StringRule = {}, value: unknown = this.at(path)): string | undefined {
    if (value === undefined || value === null) return this.missing(path, rule.required);
    if (typeof value !== 'string') throw serialization(path, 'a string');
    this.checkString(path, value, rule);
    return value;
  }

  integer(path: string, rule: NumberRule = {}, value: unknown = this.at(path)): number | undefined {
    if (value === undefined || value === null) return this.missing(path, rule.required);
    if (typeof value !== 'number' || !Number.isInteger(value)) throw serialization(path, 'an integer');
    if (rule.min !== undefined && value < rule.min) this.fail(path, value, `Member must have value greater than or equal to ${rule.min}`);
    if (rule.max !== undefined && value > rule.max) this.fail(path, value, `Member must have value less than or equal to ${rule.max}`);
    return value;
  }

  boolean(path: string, required = false, value: unknown = this.at(path)): boolean | undefined {
    if (value === undefined || value === null) return this.missing(path, required);
    if (typeof value !== 'boolean') throw serialization(path, 'a boolean');
    return value;
  }

  /** A list of strings, each checked with `item`. */
  strings(path: string, rule: ListRule = {}, item: StringRule = {}, value: unknown = this.at(path)): string[] | undefined {
    const list = this.list(path, rule, value);
    if (!list) return undefined;
    return list.map((v, i) => this.string(`${path}.${i + 1}.member`, { ...item, required: true }, v)!);
  }

  /** A list of objects; the caller reads each one's members (with a path such as 'imageIds.1.member.imageTag'). */
  list(path: string, rule: ListRule = {}, value: unknown = this.at(path)): unknown[] | undefined {
    if (value === undefined || value === null) return this.missing(path, rule.required);
    if (!Array.isArray(value)) throw serialization(path, 'a list');
    const shown = value.length > 10 ? `[${value.length} members]` : value;
    if (rule.min !== undefined && value.length < rule.min) {
      this.fail(path, shown, `Member must have length greater than or equal to ${rule.min}`);
    }
    if (rule.max !== undefined && value.length > rule.max) {
      this.fail(path, shown, `Member must have length less than or equal to ${rule.max}`);
    }
    return value;
  }

  /** A structure member: an object or undefined. */
  object(path: string, required = false, value: unknown = this.at(path)): Readonly<Record<string, unknown>> | undefined {
    if (value === undefined || value === null) return this.missing(path, required);
    if (typeof value !== 'object' || Array.isArray(value)) throw serialization(path, 'a structure');
    return value as Record<string, unknown>;
  }

  /** Records a problem found by the caller (a rule the model states in words). */
  fail(path: string, value: unknown, constraint: string): void {
    const shown = value === undefined ? 'null' : typeof value === 'string' ? `'${value}'` : JSON.stringify(value);
    this.problems.push({ path, shown, constraint });
  }

  /** Throws the ValidationException for everything found, if anything was. */
  done(): void {
    if (this.problems.length > 0) throw new InputValidationError(this.problems);
  }

  private at(path: string): unknown {
    let cur: unknown = this.input;
    for (const part of path.split('.')) {
      if (typeof cur !== 'object' || cur === null) return undefined;
      cur = (cur as Record<string, unknown>)[part];
    }
    return cur;
  }

  private missing(path: string, required: boolean | undefined): undefined {
    if (required) this.problems.push({ path, shown: 'null', constraint: 'Member must not be null' });
    return undefined;
  }

  private checkString(path: string, value: string, rule: StringRule): void {
    if (rule.enum && !rule.enum.includes(value)) {
      this.fail(path, value, `Member must satisfy enum value set: [${rule.enum.join(', ')}]`);
      return;
    }
    if (rule.min !== undefined && value.length < rule.min) this.fail(path, value, `Member must have length greater than or equal to ${rule.min}`);
    if (rule.max !== undefined && value.length > rule.max) this.fail(path, value, `Member must have length less than or equal to ${rule.max}`);
    if (rule.pattern && !rule.pattern.test(value)) {
      this.fail(path, value, `Member must satisfy regular expression pattern: ${modelPattern(rule.pattern)}`);
    }
  }
}

/** The pattern as the service model writes it (without our anchors and non-capturing groups). */
function modelPattern(pattern: RegExp): string {
  return pattern.source.replace(/^\^|\$$/g, '').replace(/\(\?:/g, '(');
}

function serialization(path: string, expected: string): EcrError {
  return new EcrError('SerializationException', `Unexpected value at '${path}': expected ${expected}`);
}
