import {
  type Attributes,
  type AttributeValue,
  type Context,
  context as contextApi,
  type Exception,
  type Link,
  type Span,
  type SpanAttributes,
  type SpanContext,
  type SpanOptions,
  type SpanStatus,
  type TimeInput,
  type Tracer,
  trace,
} from '@opentelemetry/api';

/** A span as the in-memory tracer records it. */
export interface RecordedSpan {
  name: string;
  spanId: string;
  traceId: string;
  parentSpanId: string | undefined;
  attributes: Attributes;
  events: Array<{ name: string; attributes: Attributes | undefined; time: TimeInput | undefined }>;
  status: SpanStatus | undefined;
  startTime: TimeInput | undefined;
  endTime: TimeInput | undefined;
  ended: boolean;
}

/** A Tracer written against @opentelemetry/api's interfaces that keeps every span in memory. */
export function createMemoryTracer(): { tracer: Tracer; spans: RecordedSpan[] } {
  const spans: RecordedSpan[] = [];
  let sequence = 0;
  const hex = (value: number, length: number) => value.toString(16).padStart(length, '0');

  const startSpan = (
    name: string,
    options: SpanOptions = {},
    parent: Context = contextApi.active(),
  ): Span => {
    const parentSpan = options.root ? undefined : trace.getSpan(parent);
    const parentContext = parentSpan?.spanContext();
    sequence += 1;
    const spanContext: SpanContext = {
      traceId: parentContext?.traceId ?? hex(sequence, 32),
      spanId: hex(sequence, 16),
      traceFlags: 1,
    };
    const recorded: RecordedSpan = {
      name,
      spanId: spanContext.spanId,
      traceId: spanContext.traceId,
      parentSpanId: parentContext?.spanId,
      attributes: { ...options.attributes },
      events: [],
      status: undefined,
      startTime: options.startTime,
      endTime: undefined,
      ended: false,
    };
    spans.push(recorded);
    const span: Span = {
      spanContext: () => spanContext,
      setAttribute(key: string, value: AttributeValue) {
        recorded.attributes[key] = value;
        return span;
      },
      setAttributes(attributes: SpanAttributes) {
        Object.assign(recorded.attributes, attributes);
        return span;
      },
      addEvent(eventName: string, attributesOrTime?: SpanAttributes | TimeInput, time?: TimeInput) {
        const isTime =
          typeof attributesOrTime === 'number' ||
          attributesOrTime instanceof Date ||
          Array.isArray(attributesOrTime);
        recorded.events.push({
          name: eventName,
          attributes: isTime ? undefined : (attributesOrTime as Attributes | undefined),
          time: isTime ? (attributesOrTime as TimeInput) : time,
        });
        return span;
      },
      addLink(_link: Link) {
        return span;
      },
      addLinks(_links: Link[]) {
        return span;
      },
      setStatus(status: SpanStatus) {
        recorded.status = status;
        return span;
      },
      updateName(newName: string) {
        recorded.name = newName;
        return span;
      },
      end(endTime?: TimeInput) {
        if (recorded.ended) throw new Error(`span ${recorded.name} ended twice`);
        recorded.ended = true;
        recorded.endTime = endTime;
      },
      isRecording: () => !recorded.ended,
      recordException(exception: Exception, time?: TimeInput) {
        recorded.events.push({ name: 'exception', attributes: { message: String(exception) }, time });
      },
    };
    return span;
  };

  const tracer: Tracer = {
    startSpan,
    startActiveSpan(name: string, ...rest: unknown[]) {
      const fn = rest.at(-1) as (span: Span) => unknown;
      const options = (rest.length >= 2 ? rest[0] : {}) as SpanOptions;
      const parent = (rest.length >= 3 ? rest[1] : contextApi.active()) as Context;
      const span = startSpan(name, options, parent);
      return contextApi.with(trace.setSpan(parent, span), () => fn(span));
    },
  } as Tracer;
  return { tracer, spans };
}
