//! Expansion of `#[cron_target("key", timeout = "5m", diagnostic)]`.
//!
//! The function is emitted unchanged; beside it goes a `const _: () = { ... };` block with a
//! type-erased entry point and an `inventory` registration. Every mistake is reported on the
//! user's own token, and on error the function is still emitted untouched so one mistake does
//! not cascade into "cannot find function" errors elsewhere.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, FnArg, Ident, ItemFn, Lit, LitStr, Meta, ReturnType, Token, Type};

/// Arguments that may be given by name.
const NAMED_ARGS: &str = "`timeout`, `diagnostic`";

/// Longest key, in characters (`JobKey::MAX_LEN` in cron-runtime).
const KEY_MAX_LEN: usize = 100;

/// Used when no `timeout` is given.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let input: ItemFn = match syn::parse2(item.clone()) {
        Ok(input) => input,
        Err(e) => return token_stream_with_error(item, e),
    };

    // Report argument and signature mistakes together: fixing one should not reveal the other.
    let config = Config::from_args(args);
    let handler = Handler::from_fn(&input);
    match (config, handler) {
        (Ok(config), Ok(handler)) => generate(&input, &config, &handler),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => token_stream_with_error(item, e),
        (Err(mut e), Err(e2)) => {
            e.combine(e2);
            token_stream_with_error(item, e)
        }
    }
}

fn token_stream_with_error(mut tokens: TokenStream, error: syn::Error) -> TokenStream {
    tokens.extend(error.into_compile_error());
    tokens
}

/// The attribute's arguments, validated.
struct Config {
    key: LitStr,
    timeout: Duration,
    diagnostic: bool,
}

/// One argument as written: the key (a bare literal) or `name = value`.
enum Arg {
    Key(Lit),
    Named(Box<Meta>),
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(Lit) {
            input.parse().map(Arg::Key)
        } else {
            input.parse().map(|meta| Arg::Named(Box::new(meta)))
        }
    }
}

impl Config {
    fn from_args(args: TokenStream) -> syn::Result<Config> {
        let parsed = Punctuated::<Arg, Token![,]>::parse_terminated.parse2(args)?;

        let mut key: Option<LitStr> = None;
        // A key written wrongly is reported as such, not also as missing.
        let mut key_attempted = false;
        let mut timeout: Option<Duration> = None;
        let mut diagnostic = false;
        let mut errors: Option<syn::Error> = None;
        let mut fail = |e: syn::Error| match &mut errors {
            Some(errors) => errors.combine(e),
            None => errors = Some(e),
        };

        for arg in parsed {
            match arg {
                Arg::Key(Lit::Str(lit)) => {
                    if key.is_some() {
                        fail(syn::Error::new_spanned(&lit, "the target key is given twice"));
                    } else {
                        if let Err(reason) = check_key(&lit.value()) {
                            fail(syn::Error::new_spanned(&lit, format!("malformed target key: {reason}")));
                        }
                        key = Some(lit);
                    }
                }
                Arg::Key(other) => {
                    key_attempted = true;
                    fail(syn::Error::new_spanned(
                        other,
                        "the target key must be a string literal, e.g. #[cron_target(\"reports.digest\")]",
                    ))
                }
                Arg::Named(meta) => {
                    let name = meta.path().get_ident().map(|i| i.unraw().to_string());
                    match (name.as_deref(), meta.as_ref()) {
                        (Some("timeout"), Meta::NameValue(_)) if timeout.is_some() => {
                            fail(syn::Error::new_spanned(&meta, "`timeout` is given twice"));
                        }
                        (Some("timeout"), Meta::NameValue(nv)) => match parse_timeout(&nv.value) {
                            Ok(value) => timeout = Some(value),
                            Err(e) => fail(e),
                        },
                        (Some("timeout"), _) => fail(syn::Error::new_spanned(
                            &meta,
                            "expected `timeout = \"...\"`, e.g. `timeout = \"5m\"`",
                        )),
                        (Some("diagnostic"), Meta::Path(_)) if diagnostic => {
                            fail(syn::Error::new_spanned(&meta, "`diagnostic` is given twice"));
                        }
                        (Some("diagnostic"), Meta::Path(_)) => diagnostic = true,
                        (Some("diagnostic"), _) => fail(syn::Error::new_spanned(
                            &meta,
                            "`diagnostic` takes no value: write `diagnostic`",
                        )),
                        (Some("key"), _) => {
                            key_attempted = true;
                            fail(syn::Error::new_spanned(
                                meta.path(),
                                "the key is given without a name: #[cron_target(\"reports.digest\")]",
                            ))
                        }
                        _ => fail(syn::Error::new_spanned(
                            meta.path(),
                            format!(
                                "unknown argument `{}`; valid arguments: {NAMED_ARGS} \
                                 (after the target key)",
                                meta.path().to_token_stream().to_string().replace(' ', "")
                            ),
                        )),
                    }
                }
            }
        }

        if key.is_none() && !key_attempted {
            fail(syn::Error::new(
                Span::call_site(),
                "missing target key: write #[cron_target(\"reports.digest\")]",
            ));
        }
        match (errors, key) {
            (Some(errors), _) => Err(errors),
            (None, Some(key)) => Ok(Config {
                key,
                timeout: timeout.unwrap_or(DEFAULT_TIMEOUT),
                diagnostic,
            }),
            (None, None) => unreachable!("a missing or mistyped key is reported above"),
        }
    }
}

/// The rule of `JobKey::parse` in cron-runtime (`^[a-z0-9][a-z0-9._-]{0,99}$`), applied at
/// compile time. The registry checks it again at startup; both must agree.
fn check_key(key: &str) -> Result<(), String> {
    let first = key.chars().next().ok_or_else(|| "must not be empty".to_owned())?;
    let len = key.chars().count();
    if len > KEY_MAX_LEN {
        return Err(format!("must be at most {KEY_MAX_LEN} characters (got {len})"));
    }
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err(format!("must start with a lowercase letter or digit (found {first:?})"));
    }
    if let Some(bad) = key
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!("may contain only a-z, 0-9, '.', '_' and '-' (found {bad:?})"));
    }
    Ok(())
}

fn parse_timeout(value: &Expr) -> syn::Result<Duration> {
    let lit = match value {
        Expr::Lit(syn::ExprLit { lit: Lit::Str(lit), .. }) => lit,
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "`timeout` must be a string with a duration, e.g. `timeout = \"5m\"`",
            ))
        }
    };
    let timeout = humantime::parse_duration(&lit.value()).map_err(|e| {
        syn::Error::new_spanned(
            lit,
            format!("invalid `timeout`: {e}; write a duration such as \"90s\", \"5m\" or \"1h 30m\""),
        )
    })?;
    if timeout.is_zero() {
        return Err(syn::Error::new_spanned(lit, "`timeout` must be greater than zero"));
    }
    Ok(timeout)
}

/// What the generated code needs to know about the function.
struct Handler {
    /// The payload type, when the function takes a second argument.
    payload: Option<Type>,
    /// The first argument's type, to point type errors at it.
    ctx_span: Span,
    /// The return type, to point type errors at it.
    output_span: Span,
    description: String,
}

impl Handler {
    fn from_fn(input: &ItemFn) -> syn::Result<Handler> {
        let sig = &input.sig;
        let mut errors: Vec<syn::Error> = Vec::new();

        if sig.asyncness.is_none() {
            errors.push(syn::Error::new_spanned(
                sig.fn_token,
                "a cron target must be an `async fn`",
            ));
        }
        if let Some(unsafety) = &sig.unsafety {
            errors.push(syn::Error::new_spanned(unsafety, "a cron target must not be `unsafe`"));
        }
        if !sig.generics.params.is_empty() {
            errors.push(syn::Error::new_spanned(
                &sig.generics,
                "a cron target must not have generic or lifetime parameters",
            ));
        }
        if let Some(where_clause) = &sig.generics.where_clause {
            errors.push(syn::Error::new_spanned(
                where_clause,
                "a cron target must not have a `where` clause",
            ));
        }
        if let Some(variadic) = &sig.variadic {
            errors.push(syn::Error::new_spanned(variadic, "a cron target must not be variadic"));
        }

        let mut typed = Vec::new();
        for arg in &sig.inputs {
            match arg {
                FnArg::Receiver(receiver) => errors.push(syn::Error::new_spanned(
                    receiver,
                    "a cron target must be a free function, without `self`",
                )),
                FnArg::Typed(pat_type) => typed.push(pat_type),
            }
        }
        if sig.inputs.is_empty() {
            errors.push(syn::Error::new(
                sig.paren_token.span.join(),
                "a cron target takes the run's context: `(ctx: JobContext)` or \
                 `(ctx: JobContext, args: YourPayload)`",
            ));
        } else if typed.len() > 2 {
            errors.push(syn::Error::new_spanned(
                typed[2],
                "a cron target takes at most two arguments: `(ctx: JobContext, args: YourPayload)`; \
                 put everything else in the payload type",
            ));
        }

        let output_span = match &sig.output {
            ReturnType::Default => {
                errors.push(syn::Error::new_spanned(
                    &sig.ident,
                    "a cron target must return a `Result`, e.g. `-> anyhow::Result<()>`",
                ));
                Span::call_site()
            }
            ReturnType::Type(_, ty) => ty.span(),
        };

        let combined = errors.into_iter().reduce(|mut a, b| {
            a.combine(b);
            a
        });
        match (combined, typed.first()) {
            (Some(errors), _) => Err(errors),
            (None, Some(ctx)) => Ok(Handler {
                payload: typed.get(1).map(|arg| (*arg.ty).clone()),
                ctx_span: ctx.ty.span(),
                output_span,
                description: description(&input.attrs),
            }),
            (None, None) => unreachable!("a function without arguments is reported above"),
        }
    }
}

/// The doc comment: every `///` line (or `#[doc = "..."]`), each trimmed, joined by newlines,
/// with leading and trailing blank lines removed.
fn description(attrs: &[syn::Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .filter_map(|attr| match &attr.meta {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(syn::ExprLit { lit: Lit::Str(lit), .. }) => Some(lit.value()),
                _ => None,
            },
            _ => None,
        })
        // `split`, not `lines`: an empty `///` line is `#[doc = ""]`, a paragraph break to keep.
        .flat_map(|doc| doc.split('\n').map(|line| line.trim().to_owned()).collect::<Vec<_>>())
        .collect();
    lines.join("\n").trim().to_owned()
}

fn generate(input: &ItemFn, config: &Config, handler: &Handler) -> TokenStream {
    let p = quote!(::cron_runtime::__private);
    let ident = &input.sig.ident;
    let function = LitStr::new(&ident.unraw().to_string(), ident.span());
    let key = &config.key;
    let description = LitStr::new(&handler.description, Span::call_site());
    let secs = config.timeout.as_secs();
    let nanos = config.timeout.subsec_nanos();
    let diagnostic = config.diagnostic;

    // Locals are `__cron_`-prefixed so they cannot shadow the user's function (which may well be
    // called `payload`). Some carry the span of the user's token so that a type error lands on
    // the signature rather than on the attribute; each is declared and used with the same span.
    let ctx = Ident::new("__cron_ctx", handler.ctx_span);
    let result = Ident::new("__cron_result", handler.output_span);
    let encode = quote_spanned! {handler.output_span=>
        let __cron_permanent = {
            #[allow(unused_imports)]
            use #p::{NeverPermanent as _, PermanentViaAnyhow as _, PermanentViaStdError as _};
            (&&&#p::ErrorProbe(#result.as_ref().err())).is_permanent()
        };
        #p::encode_output(#result).map_err(|message| #p::Failure { message, permanent: __cron_permanent })
    };

    let (params, decode, args, schema_fn, payload_spec) = match &handler.payload {
        Some(ty) => {
            let payload = Ident::new("__cron_payload", Span::call_site());
            let args = Ident::new("__cron_args", ty.span());
            let decode = quote_spanned! {ty.span()=>
                let #args = match #p::decode_payload::<#ty>(#payload) {
                    ::core::result::Result::Ok(#args) => #args,
                    ::core::result::Result::Err(__cron_error) => {
                        return ::core::result::Result::Err(#p::Failure::new(
                            ::std::format!("invalid payload: {}", __cron_error),
                        ));
                    }
                };
            };
            let type_name = LitStr::new(&type_name(ty), ty.span());
            let schema_fn = quote! {
                fn __cron_schema() -> ::core::option::Option<#p::Value> {
                    #[allow(unused_imports)]
                    use #p::{NoJsonSchema as _, ViaJsonSchema as _};
                    (&&#p::SchemaProbe::<#ty>::new()).schema()
                }
            };
            let spec = quote! {
                ::core::option::Option::Some(#p::PayloadSpec {
                    type_name: #type_name,
                    validate: #p::validate_payload::<#ty>,
                    schema: __cron_schema,
                })
            };
            (
                quote!(#ctx: #p::JobContext, #payload: #p::Value),
                decode,
                quote!(#ctx, #args),
                schema_fn,
                spec,
            )
        }
        None => (
            quote!(#ctx: #p::JobContext, _: #p::Value),
            quote!(),
            quote!(#ctx),
            quote!(),
            quote!(::core::option::Option::None),
        ),
    };

    // Spanned on the function's name so that a future that is not `Send` is reported there.
    let boxed = quote_spanned! {ident.span()=>
        ::std::boxed::Box::pin(async move {
            #decode
            let #result = #ident(#args).await;
            #encode
        })
    };

    quote! {
        #input

        const _: () = {
            fn __cron_run(#params) -> #p::RunFuture {
                #boxed
            }

            #schema_fn

            #p::inventory::submit! {
                #p::Target {
                    key: #key,
                    description: #description,
                    timeout: ::core::time::Duration::new(#secs, #nanos),
                    payload: #payload_spec,
                    diagnostic: #diagnostic,
                    run: __cron_run,
                    function: #function,
                    file: ::core::file!(),
                    line: ::core::line!(),
                }
            }
        };
    }
}

/// The type as written, without the spaces token printing puts inside paths and generics
/// (`Vec<my::Args>`, not `Vec < my :: Args >`).
fn type_name(ty: &Type) -> String {
    ty.to_token_stream()
        .to_string()
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" <", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
}
